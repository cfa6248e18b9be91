//! The translator's view of the plugin runtime: [`Session`] implements
//! [`UpstreamPlugins`] and [`FilterPlugins`], so `translate` never sees wasmtime. [`ObservedSession`] does the
//! same and also reports every call's duration and outcome to a [`CallObserver`]
//! (`weir serve` feeds its `/metrics` with it).

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{Route, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use prost::{Message, Name};

use crate::model::{ObjectKey, WEIR_GROUP};
use crate::translate::{
    FilterPlugins, HttpListenerOptionRequest, ListenerOptionRequest, OptionFilter, OptionRequest,
    OptionResult, RouteOptionRequest, UpstreamPlugins, UpstreamRequest, VirtualHostOptionRequest,
};

use super::bindings::{ObjectRef, PluginError};
use super::error::{CallError, describe};
use super::metadata::World;
use super::outputs::{HookLevel, HookResult, UpstreamResult};
use super::runtime::PluginRuntime;
use super::session::{Endpoint, HttpFilter, Session, StageName, StagePosition, UpstreamInput};

/// Told about every plugin call a translation pass makes.
pub trait CallObserver {
    /// `plugin` (its name) answered in `elapsed`; `error` names the kind of failure
    /// (see [`error_kind`]) when the call did not produce a result.
    fn plugin_call(&self, plugin: &str, elapsed: Duration, error: Option<&'static str>);
}

/// A [`Session`] whose calls are timed and reported to a [`CallObserver`].
pub struct ObservedSession<'r, 'o> {
    session: Session<'r>,
    runtime: &'r PluginRuntime,
    observer: &'o dyn CallObserver,
}

impl<'r, 'o> ObservedSession<'r, 'o> {
    /// A new session of `runtime` reporting to `observer`.
    pub fn new(runtime: &'r PluginRuntime, observer: &'o dyn CallObserver) -> Self {
        Self {
            session: runtime.session(),
            runtime,
            observer,
        }
    }
}

/// A short, stable name for the kind of a failed call (a metrics label): `declined`,
/// `timeout`, `out_of_memory`, `crash`, `output_too_large`, `wrong_type`, `undecodable`,
/// `host`, or `unknown_key`.
pub fn error_kind(error: &CallError) -> &'static str {
    match error {
        CallError::UnknownKey { .. } => "unknown_key",
        CallError::Declined { .. } => "declined",
        CallError::Timeout { .. } => "timeout",
        CallError::OutOfMemory { .. } => "out_of_memory",
        CallError::Crash { .. } => "crash",
        CallError::OutputTooLarge { .. } => "output_too_large",
        CallError::WrongType { .. } => "wrong_type",
        CallError::Undecodable { .. } => "undecodable",
        CallError::Host { .. } => "host",
    }
}

impl UpstreamPlugins for Session<'_> {
    fn translate_upstream(
        &mut self,
        request: &UpstreamRequest<'_>,
    ) -> Result<(Cluster, Option<ClusterLoadAssignment>), String> {
        let key = request.type_key;
        self.translate_upstream(&upstream_input(request))
            .map(|r| (*r.cluster, r.load_assignment))
            .map_err(|e| upstream_error(key, e))
    }

    fn filter_plugins(&mut self) -> Option<&mut dyn FilterPlugins> {
        Some(self)
    }
}

/// Implements [`FilterPlugins`] for a type with a `hook` method, one level per method.
macro_rules! filter_plugins_by_hook {
    ($ty:ty) => {
        impl FilterPlugins for $ty {
            fn apply_route(&mut self, request: &RouteOptionRequest<'_>) -> OptionResult<Route> {
                self.hook(HookLevel::Route, request)
            }

            fn apply_virtual_host(
                &mut self,
                request: &VirtualHostOptionRequest<'_>,
            ) -> OptionResult<VirtualHost> {
                self.hook(HookLevel::VirtualHost, request)
            }

            fn apply_http_connection_manager(
                &mut self,
                request: &HttpListenerOptionRequest<'_>,
            ) -> OptionResult<HttpConnectionManager> {
                self.hook(HookLevel::HttpConnectionManager, request)
            }

            fn apply_listener(
                &mut self,
                request: &ListenerOptionRequest<'_>,
            ) -> OptionResult<Listener> {
                self.hook(HookLevel::Listener, request)
            }
        }
    };
}

filter_plugins_by_hook!(Session<'_>);
filter_plugins_by_hook!(ObservedSession<'_, '_>);

impl Session<'_> {
    /// Calls the `level` hook of the plugin claiming `request.key`.
    fn hook<M: Message + Name + Default>(
        &mut self,
        level: HookLevel,
        request: &OptionRequest<'_, M>,
    ) -> OptionResult<M> {
        let result = self.apply(
            level,
            request.key,
            &request.config.to_string(),
            &option_ref(request.source),
            request.target,
        );
        hook_result(request.key, result)
    }
}

impl ObservedSession<'_, '_> {
    /// Calls the `level` hook of the plugin claiming `request.key`, timing the call and
    /// reporting it to the observer.
    fn hook<M: Message + Name + Default>(
        &mut self,
        level: HookLevel,
        request: &OptionRequest<'_, M>,
    ) -> OptionResult<M> {
        let key = request.key;
        let started = Instant::now();
        let result = self.session.apply(
            level,
            key,
            &request.config.to_string(),
            &option_ref(request.source),
            request.target,
        );
        let elapsed = started.elapsed();
        let plugin = match &result {
            Err(error) => error.plugin().map(|p| p.name.clone()),
            Ok(_) => self
                .runtime
                .claimant(World::Options, key)
                .map(|(_, p)| p.id.name.clone()),
        };
        if let Some(plugin) = plugin {
            let error = result.as_ref().err().map(error_kind);
            self.observer.plugin_call(&plugin, elapsed, error);
        }
        hook_result(key, result)
    }
}

/// The option object (RouteOption, VirtualHostOption, …) a hook's value came from.
fn option_ref(source: &ObjectKey) -> ObjectRef {
    ObjectRef {
        group: WEIR_GROUP.to_string(),
        kind: source.kind.to_string(),
        namespace: source.namespace.clone().unwrap_or_default(),
        name: source.name.clone(),
    }
}

/// A hook's answer as the translator takes it.
fn hook_result<M>(
    key: &str,
    result: Result<HookResult<M>, CallError>,
) -> Result<(M, Vec<OptionFilter>), String> {
    result
        .map(|r| {
            let filters = r.http_filters.into_iter().map(option_filter).collect();
            (r.target, filters)
        })
        .map_err(|e| option_error(key, e))
}

/// A plugin's HTTP filter as the translator's [`OptionFilter`].
fn option_filter(f: HttpFilter) -> OptionFilter {
    let stage = match f.stage.name {
        StageName::Fault => 0,
        StageName::Cors => 1,
        StageName::Waf => 2,
        StageName::Authn => 3,
        StageName::Authz => 4,
        StageName::RateLimit => 5,
        StageName::Accepted => 6,
        StageName::OutAuth => 7,
        StageName::Route => 8,
    };
    let position = match f.stage.position {
        StagePosition::Before => 0,
        StagePosition::During => 1,
        StagePosition::After => 2,
    };
    OptionFilter {
        name: f.name,
        stage: (stage, position),
        config: envoy_types::pb::google::protobuf::Any {
            type_url: f.config.type_url,
            value: f.config.value,
        },
        disabled: f.disabled,
    }
}

/// A failed option hook as the sentence the RouteOption's condition carries.
fn option_error(key: &str, error: CallError) -> String {
    match error {
        CallError::UnknownKey { .. } => {
            format!("spec.options.{key}: no plugin claims option key `{key}`")
        }
        // The plugin's field paths are relative to the option value it received.
        CallError::Declined { plugin, error } => {
            let field = |path: &str| {
                if path.is_empty() {
                    format!("spec.options.{key}")
                } else {
                    format!("spec.options.{key}.{path}")
                }
            };
            let detail = match &error {
                PluginError::InvalidConfig(fields) => fields
                    .iter()
                    .map(|f| format!("{}: {}", field(&f.path), f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                PluginError::Unresolved(f) => format!("{}: {}", field(&f.path), f.message),
                other => format!("spec.options.{key}: {}", describe(other)),
            };
            format!("{plugin} rejected the option: {detail}")
        }
        other => format!("spec.options.{key}: {other}"),
    }
}

impl UpstreamPlugins for ObservedSession<'_, '_> {
    fn translate_upstream(
        &mut self,
        request: &UpstreamRequest<'_>,
    ) -> Result<(Cluster, Option<ClusterLoadAssignment>), String> {
        let key = request.type_key;
        let input = upstream_input(request);
        let started = Instant::now();
        let result: Result<UpstreamResult, CallError> = self.session.translate_upstream(&input);
        let elapsed = started.elapsed();
        // The claimant's name; a key nobody claims was never a call.
        let plugin = match &result {
            Err(error) => error.plugin().map(|p| p.name.clone()),
            Ok(_) => self
                .runtime
                .claimant(World::UpstreamType, key)
                .map(|(_, p)| p.id.name.clone()),
        };
        if let Some(plugin) = plugin {
            let error = result.as_ref().err().map(error_kind);
            self.observer.plugin_call(&plugin, elapsed, error);
        }
        result
            .map(|r| (*r.cluster, r.load_assignment))
            .map_err(|e| upstream_error(key, e))
    }

    fn filter_plugins(&mut self) -> Option<&mut dyn FilterPlugins> {
        Some(self)
    }
}

/// The plugin's input for one Upstream.
fn upstream_input(request: &UpstreamRequest<'_>) -> UpstreamInput {
    UpstreamInput {
        upstream: ObjectRef {
            group: WEIR_GROUP.to_string(),
            kind: "Upstream".to_string(),
            namespace: request.upstream.namespace.clone().unwrap_or_default(),
            name: request.upstream.name.clone(),
        },
        cluster_name: request.cluster_name.0.clone(),
        key: request.type_key.to_string(),
        config: request.config.to_string(),
        endpoints: request
            .endpoints
            .iter()
            .map(|e| Endpoint {
                address: e.address.clone(),
                port: e.port,
                weight: e.weight,
                ready: e.ready,
                labels: e.labels.clone(),
            })
            .collect(),
    }
}

/// A failed call as the sentence the Upstream's condition carries.
fn upstream_error(key: &str, error: CallError) -> String {
    match error {
        // The plugin's field paths are relative to the type block it received.
        CallError::Declined { plugin, error } => {
            let detail = match &error {
                PluginError::InvalidConfig(fields) => fields
                    .iter()
                    .map(|f| format!("spec.{key}.{}: {}", f.path, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                PluginError::Unresolved(f) => {
                    format!("spec.{key}.{}: {}", f.path, f.message)
                }
                other => format!("spec.{key}: {}", describe(other)),
            };
            format!("{plugin} rejected the Upstream: {detail}")
        }
        other => format!("spec.{key}: {other}"),
    }
}
