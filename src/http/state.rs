//! What every handler and extractor is given: the running [`App`], shared.
//!
//! A module of its own so that the handlers (`routes`) and the extractors (`auth`) both name
//! it without importing each other's module the wrong way round.

use std::sync::Arc;

use crate::service::App;

/// The router's state: one [`App`] for every request.
pub type AppState = Arc<App>;
