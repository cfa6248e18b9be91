//! The `options` world: [`FilterPlugin`] implements option keys of
//! RouteOption, VirtualHostOption, ListenerOption and HttpListenerOption.

use prost::Name;

use crate::{Any, ObjectRef, PluginError, pack, unpack};

/// A filter plugin: claims option keys (`faults`, `cors`, ...) and applies
/// them to the Envoy message at the level the option was written at.
///
/// Implement [`FilterPlugin::validate`] and the hooks for the levels your keys
/// make sense at; the other hooks keep their default, which returns the target
/// unchanged and asks for no filters. All functions are plain Rust, so tests
/// call them directly; [`export!`](crate::export) wires them to the component.
///
/// # What each hook gets and must return
///
/// Every hook gets the Envoy message at its level as [`HookInput::target`] and
/// must return a message of the *same* type URL in [`HookOutput::target`]:
///
/// | hook | option kind | target type URL |
/// |---|---|---|
/// | [`apply_listener`](FilterPlugin::apply_listener) | ListenerOption | `type.googleapis.com/envoy.config.listener.v3.Listener` |
/// | [`apply_http_connection_manager`](FilterPlugin::apply_http_connection_manager) | HttpListenerOption | `type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager` |
/// | [`apply_virtual_host`](FilterPlugin::apply_virtual_host) | VirtualHostOption | `type.googleapis.com/envoy.config.route.v3.VirtualHost` |
/// | [`apply_route`](FilterPlugin::apply_route) | RouteOption | `type.googleapis.com/envoy.config.route.v3.Route` |
///
/// [`HookOutput::http_filters`] lists HTTP filters the option needs in the
/// listener's chain; the host deduplicates them by name and orders them by
/// [`Stage`]. The host rejects output of another type or over its size cap.
pub trait FilterPlugin {
    /// Checks the value of option `key` (JSON text) without applying it.
    fn validate(key: &str, config: &str) -> Result<(), PluginError>;

    /// Applies a ListenerOption key to an `envoy.config.listener.v3.Listener`.
    fn apply_listener(input: HookInput) -> Result<HookOutput, PluginError> {
        Ok(HookOutput::unchanged(&input))
    }

    /// Applies an HttpListenerOption key to an
    /// `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`.
    fn apply_http_connection_manager(input: HookInput) -> Result<HookOutput, PluginError> {
        Ok(HookOutput::unchanged(&input))
    }

    /// Applies a VirtualHostOption key to an `envoy.config.route.v3.VirtualHost`.
    fn apply_virtual_host(input: HookInput) -> Result<HookOutput, PluginError> {
        Ok(HookOutput::unchanged(&input))
    }

    /// Applies a RouteOption key to an `envoy.config.route.v3.Route`.
    fn apply_route(input: HookInput) -> Result<HookOutput, PluginError> {
        Ok(HookOutput::unchanged(&input))
    }
}

/// The named stages HTTP filters are ordered by, first to last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageName {
    /// Fault injection.
    Fault,
    /// CORS handling.
    Cors,
    /// Web application firewall.
    Waf,
    /// Authentication.
    Authn,
    /// Authorization.
    Authz,
    /// Rate limiting.
    RateLimit,
    /// After the request has been accepted.
    Accepted,
    /// Outbound authentication (credentials for the upstream).
    OutAuth,
    /// Just before routing.
    Route,
}

/// Where within its stage a filter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StagePosition {
    /// Before the stage's own filters.
    Before,
    /// Among the stage's own filters.
    During,
    /// After the stage's own filters.
    After,
}

/// Position of an HTTP filter in the chain: a named stage and where in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stage {
    /// The named stage.
    pub name: StageName,
    /// Before, during or after it.
    pub position: StagePosition,
}

// === impl Stage ===

impl Stage {
    /// Before the stage's own filters.
    pub const fn before(name: StageName) -> Self {
        Self {
            name,
            position: StagePosition::Before,
        }
    }

    /// Among the stage's own filters.
    pub const fn during(name: StageName) -> Self {
        Self {
            name,
            position: StagePosition::During,
        }
    }

    /// After the stage's own filters.
    pub const fn after(name: StageName) -> Self {
        Self {
            name,
            position: StagePosition::After,
        }
    }
}

/// An HTTP filter an option needs in the listener's filter chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFilter {
    /// Envoy filter name, for example `envoy.filters.http.fault`.
    pub name: String,
    /// Where the filter goes in the chain.
    pub stage: Stage,
    /// The filter's typed config.
    pub config: Any,
    /// Whether the filter is disabled on routes that do not enable it
    /// through per-route config.
    pub disabled: bool,
}

// === impl HttpFilter ===

impl HttpFilter {
    /// An enabled filter named `name` at `stage` with typed config `config`.
    pub fn new<M: Name>(name: impl Into<String>, stage: Stage, config: &M) -> Self {
        Self {
            name: name.into(),
            stage,
            config: pack(config),
            disabled: false,
        }
    }

    /// Sets whether the filter is disabled on routes that do not enable it.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }
}

/// What the host gives a [`FilterPlugin`] hook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookInput {
    /// The option key the plugin claimed (for example `faults`).
    pub key: String,
    /// The option's value, as JSON text.
    pub config: String,
    /// The option object the value came from.
    pub source: ObjectRef,
    /// The Envoy message at this level, encoded.
    pub target: Any,
}

// === impl HookInput ===

impl HookInput {
    /// Decodes [`HookInput::target`] as `M`, failing with
    /// [`PluginError::BadInput`] when it is another message.
    pub fn decode_target<M: Name + Default>(&self) -> Result<M, PluginError> {
        unpack(&self.target)
    }
}

/// What a [`FilterPlugin`] hook returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutput {
    /// The modified Envoy message, of the same type URL as the input target.
    pub target: Any,
    /// HTTP filters this option needs on the listener.
    pub http_filters: Vec<HttpFilter>,
}

// === impl HookOutput ===

impl HookOutput {
    /// Returns `target` (encoded) with no filters.
    pub fn new<M: Name>(target: &M) -> Self {
        Self {
            target: pack(target),
            http_filters: Vec::new(),
        }
    }

    /// Returns the input's target untouched, with no filters.
    pub fn unchanged(input: &HookInput) -> Self {
        Self {
            target: input.target.clone(),
            http_filters: Vec::new(),
        }
    }

    /// Adds an HTTP filter the option needs.
    pub fn with_filter(mut self, filter: HttpFilter) -> Self {
        self.http_filters.push(filter);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::config::route::v3::Route;

    struct Nothing;

    impl FilterPlugin for Nothing {
        fn validate(_key: &str, _config: &str) -> Result<(), PluginError> {
            Ok(())
        }
    }

    fn mk_input(route: &Route) -> HookInput {
        HookInput {
            key: "nothing".into(),
            config: "{}".into(),
            source: ObjectRef::default(),
            target: pack(route),
        }
    }

    #[test]
    fn default_hooks_return_the_target_unchanged() {
        let route = Route {
            name: "r".into(),
            ..Default::default()
        };
        let input = mk_input(&route);
        let output = Nothing::apply_route(input.clone()).unwrap();
        assert_eq!(output.target, input.target);
        assert!(output.http_filters.is_empty());
        assert_eq!(
            Nothing::apply_virtual_host(input.clone()).unwrap().target,
            input.target
        );
    }

    #[test]
    fn decode_target_reads_the_route() {
        let route = Route {
            name: "r".into(),
            ..Default::default()
        };
        assert_eq!(mk_input(&route).decode_target::<Route>().unwrap(), route);
    }

    #[test]
    fn stages_order_first_to_last() {
        assert!(Stage::after(StageName::Fault) < Stage::before(StageName::Cors));
        assert!(Stage::before(StageName::Fault) < Stage::during(StageName::Fault));
    }
}
