//! Validation of the payment settings.

use super::*;

fn stripe() -> PaymentsConfig {
    PaymentsConfig {
        public_url: Some("https://board.example/".into()),
        stripe_secret_key: Some(Secret::new("rk_live_abc")),
        stripe_webhook_secret: Some(Secret::new("whsec_abc")),
        ..PaymentsConfig::default()
    }
}

fn btcpay() -> PaymentsConfig {
    PaymentsConfig {
        public_url: Some("https://board.example".into()),
        btcpay_url: Some("https://btcpay.example/".into()),
        btcpay_api_key: Some(Secret::new("key123")),
        btcpay_store_id: Some("Store1".into()),
        btcpay_webhook_secret: Some(Secret::new("hook-secret")),
        ..PaymentsConfig::default()
    }
}

fn refusal(config: &PaymentsConfig, currency: &str) -> String {
    match config.build(currency) {
        Ok(_) => panic!("accepted: {config:?}"),
        Err(ConfigError(message)) => message,
    }
}

#[test]
fn nothing_given_enables_nothing() {
    let providers = PaymentsConfig::default().build("cents").expect("valid");
    assert!(providers.is_empty());
    assert_eq!(
        (providers.payment_min, providers.payment_max),
        (100, 100_000)
    );
    assert_eq!(providers.webhook_body_max_bytes, 1 << 20);
}

#[test]
fn complete_settings_enable_each_provider() {
    let providers = stripe().build("usd").expect("stripe");
    assert_eq!(providers.all().len(), 1);
    assert!(providers.get("stripe").is_some());
    let providers = btcpay().build("EUR").expect("btcpay");
    assert!(providers.get("btcpay").is_some() && providers.get("stripe").is_none());
    let test = PaymentsConfig {
        public_url: Some("http://192.168.1.5:8080".into()),
        test_provider: true,
        ..PaymentsConfig::default()
    };
    let providers = test.build("cents").expect("test on any currency");
    assert!(providers.test().is_some());
    assert!(providers.get("test").is_some_and(|p| p.test_mode()));
    assert!(providers.amount_in_bounds(100) && providers.amount_in_bounds(100_000));
    assert!(!providers.amount_in_bounds(99) && !providers.amount_in_bounds(100_001));
}

#[test]
fn half_a_provider_names_what_is_missing() {
    let config = PaymentsConfig {
        stripe_webhook_secret: None,
        ..stripe()
    };
    let message = refusal(&config, "usd");
    assert!(message.contains("Stripe is half configured"), "{message}");
    assert!(
        message.contains("--stripe-webhook-secret missing"),
        "{message}"
    );
    assert!(!message.contains("rk_live_abc"), "{message}");

    let only_base = PaymentsConfig {
        stripe_api_base: Some("http://127.0.0.1:9".into()),
        ..PaymentsConfig::default()
    };
    let message = refusal(&only_base, "usd");
    assert!(
        message.contains("--stripe-secret-key, --stripe-webhook-secret missing"),
        "{message}"
    );

    let config = PaymentsConfig {
        btcpay_store_id: None,
        btcpay_api_key: None,
        ..btcpay()
    };
    let message = refusal(&config, "usd");
    assert!(message.contains("BTCPay is half configured"), "{message}");
    assert!(
        message.contains("--btcpay-api-key, --btcpay-store-id missing"),
        "{message}"
    );
}

#[test]
fn a_public_url_is_required_and_must_be_plain() {
    let message = refusal(
        &PaymentsConfig {
            public_url: None,
            ..stripe()
        },
        "usd",
    );
    assert!(message.contains("--public-url is required"), "{message}");
    for bad in [
        "board.example",
        "ftp://board.example",
        "https://board.example/?x=1",
        "https://user:pw@board.example",
    ] {
        let config = PaymentsConfig {
            public_url: Some(bad.into()),
            ..stripe()
        };
        assert!(refusal(&config, "usd").contains("--public-url"), "{bad}");
    }
}

#[test]
fn provider_apis_need_https_but_on_loopback() {
    for (base, fine) in [
        ("https://api.stripe.com", true),
        ("http://127.0.0.1:4242", true),
        ("http://[::1]:4242", true),
        ("http://localhost:4242", true),
        ("http://api.stripe.com", false),
        ("http://10.0.0.1", false),
    ] {
        let config = PaymentsConfig {
            stripe_api_base: Some(base.into()),
            ..stripe()
        };
        assert_eq!(config.build("usd").is_ok(), fine, "{base}");
    }
}

#[test]
fn keys_of_the_wrong_kind_are_refused_without_showing_them() {
    for (key, hook) in [
        ("pk_live_abc", "whsec_abc"),
        ("rk_live_abc", "abc"),
        ("rk live", "whsec_abc"),
        ("", "whsec_abc"),
    ] {
        let config = PaymentsConfig {
            stripe_secret_key: Some(Secret::new(key)),
            stripe_webhook_secret: Some(Secret::new(hook)),
            ..stripe()
        };
        let message = refusal(&config, "usd");
        assert!(message.starts_with("--stripe-"), "{message}");
        assert!(key.is_empty() || !message.contains(key), "{message}");
    }
    let config = PaymentsConfig {
        btcpay_store_id: Some("../other".into()),
        ..btcpay()
    };
    assert!(refusal(&config, "usd").contains("--btcpay-store-id"));
}

#[test]
fn test_beside_real_needs_its_flag() {
    let config = PaymentsConfig {
        test_provider: true,
        ..stripe()
    };
    assert!(refusal(&config, "usd").contains("--payment-test-beside-real"));
    let config = PaymentsConfig {
        test_beside_real: true,
        ..config
    };
    let providers = config.build("usd").expect("both");
    let names: Vec<&str> = providers.all().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["stripe", "test"]);
}

#[test]
fn real_providers_need_an_iso_currency_stripe_one_it_counts_alike() {
    assert!(refusal(&stripe(), "cents").contains("ISO 4217"));
    assert!(refusal(&btcpay(), "cents").contains("ISO 4217"));
    assert!(refusal(&stripe(), "ISK").contains("refused for Stripe"));
    assert!(refusal(&stripe(), "huf").contains("refused for Stripe"));
    // BTCPay takes them: it is given decimals.
    assert!(btcpay().build("ISK").is_ok());
    assert!(stripe().build("jpy").is_ok());
}

#[test]
fn bounds_are_checked() {
    for config in [
        PaymentsConfig {
            payment_min: 0,
            ..stripe()
        },
        PaymentsConfig {
            payment_min: 500,
            payment_max: 499,
            ..stripe()
        },
        PaymentsConfig {
            payment_max: PAYMENT_MAX_LIMIT + 1,
            ..stripe()
        },
        PaymentsConfig {
            webhook_body_max_bytes: 1000,
            ..stripe()
        },
        PaymentsConfig {
            webhook_body_max_bytes: WEBHOOK_BODY_BYTES_MAX + 1,
            ..stripe()
        },
        PaymentsConfig {
            provider_timeout_secs: 0,
            ..stripe()
        },
        PaymentsConfig {
            provider_timeout_secs: 61,
            ..stripe()
        },
    ] {
        assert!(config.validate("usd").is_err(), "{config:?}");
    }
}

#[test]
fn no_secret_reaches_debug_output() {
    let config = PaymentsConfig {
        test_provider: true,
        test_beside_real: true,
        btcpay_url: Some("https://btcpay.example".into()),
        btcpay_api_key: Some(Secret::new("key123")),
        btcpay_store_id: Some("Store1".into()),
        btcpay_webhook_secret: Some(Secret::new("hook-secret")),
        ..stripe()
    };
    let providers = config.build("usd").expect("all three");
    for text in [format!("{config:?}"), format!("{providers:?}")] {
        for secret in ["rk_live_abc", "whsec_abc", "key123", "hook-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("***"));
    }
}
