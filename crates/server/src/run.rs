//! `authflow serve`: connect the stores, build the engine from the configuration, listen.

use std::net::SocketAddr;
use std::sync::Arc;

use authflow_core::clock::{OsRandom, SystemClock};
use authflow_core::config::Loaded;
use authflow_core::credentials::seal::Sealer;
use authflow_core::flow::{Engine, EngineDeps};

use authflow_core::config::SigningAlgorithm;

use crate::oidc::IssuedIdTokens;
use crate::signing::SigningKeys;
use crate::{AppState, settings};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Connect(#[from] authflow_store::ConnectError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Signing(#[from] crate::signing::SigningError),
    #[error("{0}")]
    Messaging(#[from] crate::messaging::MessagingError),
    #[error("encryption key: {0}")]
    Seal(#[from] authflow_core::credentials::seal::SealLoadError),
}

/// Build the application state from a loaded configuration and connected stores.
/// Loads (creating on first start) the token signing keys.
pub async fn build_state(
    loaded: &Loaded,
    stores: authflow_store::Stores,
) -> Result<AppState, ServeError> {
    let config = &loaded.config;
    let messaging = crate::messaging::start(
        &config.messaging,
        settings::app_name(config),
        stores.state.clone(),
        crate::messaging::RetryPolicy::default(),
    )?;
    let messenger = messaging.messenger;
    let sealer = Sealer::load(&config.secrets, stores.db.as_ref(), &OsRandom).await?;
    if sealer.uses_generated_key {
        // Spec 4.5: a key stored in the same database as the secrets it seals protects
        // little, so the operator hears of it at every start.
        tracing::warn!(
            "secrets.encryption_key is not set: TOTP secrets are sealed with a key generated into the database"
        );
    }
    let keys = &config.oauth.signing_keys;
    let algorithm = match keys.id_token_algorithm {
        SigningAlgorithm::RS256 => "RS256",
        SigningAlgorithm::ES256 => "ES256",
    };
    let signing = Arc::new(
        SigningKeys::load_with_rotation(stores.db.as_ref(), algorithm, keys.rotation_period)
            .await?,
    );
    signing.spawn_refresh(stores.db.clone());
    let oidc = Arc::new(crate::oidc::OidcSettings::from_config(config));
    let engine = Engine::new(EngineDeps {
        catalog: Arc::new(loaded.flows.clone()),
        settings: Arc::new(settings::engine_settings(config)),
        db: stores.db.clone(),
        state_store: stores.state.clone(),
        clock: Arc::new(SystemClock),
        rng: Arc::new(OsRandom),
        messenger,
        sealer: Arc::new(sealer.sealer),
        id_tokens: Arc::new(IssuedIdTokens::new(signing.clone(), oidc.clone())),
    });
    let auth_api = Arc::new(crate::backend_api::AuthApiSettings::new(
        config,
        stores.state.clone(),
    ));
    let hanko = crate::hanko::HankoSettings::from_config(config, stores.state.clone());
    let link_events = match &config.state_store {
        Some(store) => crate::links::LinkEvents::with_redis(&store.url, &store.key_prefix)
            .map_err(|e| {
                ServeError::Connect(authflow_store::ConnectError::StateStore {
                    url: store.url.clone(),
                    reason: e.to_string(),
                })
            })?,
        None => crate::links::LinkEvents::local(),
    };
    Ok(AppState {
        engine: Arc::new(engine),
        db: stores.db,
        state_store: stores.state,
        cors: Arc::new(settings::cors_policy(config)),
        trusted_proxies: Arc::new(config.server.trusted_proxies.clone()),
        outbox: messaging.outbox,
        signing,
        auth_api,
        oidc,
        hanko,
        link_events: Arc::new(link_events),
    })
}

/// Run until SIGINT/SIGTERM.
pub async fn run(loaded: Loaded) -> Result<(), ServeError> {
    let config = &loaded.config;
    let stores = authflow_store::connect(
        &config.database.url,
        config.database.max_connections,
        config
            .state_store
            .as_ref()
            .map(|s| (s.url.as_str(), s.key_prefix.as_str())),
    )
    .await?;
    let outbox_channels = crate::messaging::outbox_channels(&config.messaging);
    if !outbox_channels.is_empty() {
        tracing::warn!(
            channels = %outbox_channels.join(", "),
            "messages go to the development outbox (GET /authflow/outbox): not for production"
        );
    }
    let listen = config.server.listen.clone();
    let state = build_state(&loaded, stores).await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: listen.clone(),
            source,
        })?;
    tracing::info!(%listen, public_origin = %config.server.public_origin, "authflow is listening");
    axum::serve(
        listener,
        crate::app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(ServeError::Serve)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
