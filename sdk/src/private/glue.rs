//! Export glue: implements each world's generated `Guest` trait on top of the
//! SDK's traits and converts between the generated types and the SDK's own.

use std::marker::PhantomData;

use crate::__private::bindings::function_discovery::exports::weir::plugin::discovery as wit_discovery;
use crate::__private::bindings::options::exports::weir::plugin::filters as wit_filters;
use crate::__private::bindings::upstream_type::exports::weir::plugin::upstream as wit_upstream;
use crate::__private::bindings::upstream_type::weir::plugin::log as wit_log;
use crate::__private::bindings::upstream_type::weir::plugin::types as wit;
use crate::{
    Any, DiscoveryInput, Document, Endpoint, FieldError, FilterPlugin, Function, FunctionDiscovery,
    HookInput, HookOutput, HttpFilter, ObjectRef, PluginError, Stage, StageName, StagePosition,
    UpstreamInput, UpstreamOutput, UpstreamType, log::Level,
};

/// Exports an [`UpstreamType`] as the `upstream-type` world.
pub struct UpstreamGlue<T>(PhantomData<fn() -> T>);

/// Exports a [`FilterPlugin`] as the `options` world.
pub struct OptionsGlue<T>(PhantomData<fn() -> T>);

/// Exports a [`FunctionDiscovery`] as the `function-discovery` world.
pub struct DiscoveryGlue<T>(PhantomData<fn() -> T>);

// === impl UpstreamGlue ===

impl<T: UpstreamType> wit_upstream::Guest for UpstreamGlue<T> {
    fn validate(key: String, config: String) -> Result<(), wit::PluginError> {
        T::validate(&key, &config).map_err(Into::into)
    }

    fn translate(
        input: wit_upstream::UpstreamInput,
    ) -> Result<wit_upstream::UpstreamOutput, wit::PluginError> {
        T::translate(input.into())
            .map(Into::into)
            .map_err(Into::into)
    }
}

// === impl OptionsGlue ===

impl<T: FilterPlugin> wit_filters::Guest for OptionsGlue<T> {
    fn validate(key: String, config: String) -> Result<(), wit::PluginError> {
        T::validate(&key, &config).map_err(Into::into)
    }

    fn apply_listener(
        input: wit_filters::HookInput,
    ) -> Result<wit_filters::HookOutput, wit::PluginError> {
        T::apply_listener(input.into())
            .map(Into::into)
            .map_err(Into::into)
    }

    fn apply_http_connection_manager(
        input: wit_filters::HookInput,
    ) -> Result<wit_filters::HookOutput, wit::PluginError> {
        T::apply_http_connection_manager(input.into())
            .map(Into::into)
            .map_err(Into::into)
    }

    fn apply_virtual_host(
        input: wit_filters::HookInput,
    ) -> Result<wit_filters::HookOutput, wit::PluginError> {
        T::apply_virtual_host(input.into())
            .map(Into::into)
            .map_err(Into::into)
    }

    fn apply_route(
        input: wit_filters::HookInput,
    ) -> Result<wit_filters::HookOutput, wit::PluginError> {
        T::apply_route(input.into())
            .map(Into::into)
            .map_err(Into::into)
    }
}

// === impl DiscoveryGlue ===

impl<T: FunctionDiscovery> wit_discovery::Guest for DiscoveryGlue<T> {
    fn discover(
        input: wit_discovery::DiscoveryInput,
    ) -> Result<Vec<wit::Function>, wit::PluginError> {
        T::discover(input.into())
            .map(|functions| functions.into_iter().map(Into::into).collect())
            .map_err(Into::into)
    }
}

// === shared types ===

impl From<wit::Any> for Any {
    fn from(any: wit::Any) -> Self {
        Self {
            type_url: any.type_url,
            value: any.value,
        }
    }
}

impl From<Any> for wit::Any {
    fn from(any: Any) -> Self {
        Self {
            type_url: any.type_url,
            value: any.value,
        }
    }
}

impl From<wit::ObjectRef> for ObjectRef {
    fn from(object: wit::ObjectRef) -> Self {
        Self {
            group: object.group,
            kind: object.kind,
            namespace: object.namespace,
            name: object.name,
        }
    }
}

impl From<Function> for wit::Function {
    fn from(function: Function) -> Self {
        Self {
            name: function.name,
            spec: function.spec,
        }
    }
}

impl From<FieldError> for wit::FieldError {
    fn from(error: FieldError) -> Self {
        Self {
            path: error.path,
            message: error.message,
        }
    }
}

impl From<PluginError> for wit::PluginError {
    fn from(error: PluginError) -> Self {
        match error {
            PluginError::InvalidConfig(errors) => {
                Self::InvalidConfig(errors.into_iter().map(Into::into).collect())
            }
            PluginError::Unresolved(error) => Self::Unresolved(error.into()),
            PluginError::BadInput(message) => Self::BadInput(message),
            PluginError::Internal(message) => Self::Internal(message),
        }
    }
}

impl From<Level> for wit_log::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => Self::Trace,
            Level::Debug => Self::Debug,
            Level::Info => Self::Info,
            Level::Warn => Self::Warn,
            Level::Error => Self::Error,
        }
    }
}

// === upstream types ===

impl From<wit_upstream::Endpoint> for Endpoint {
    fn from(endpoint: wit_upstream::Endpoint) -> Self {
        Self {
            address: endpoint.address,
            port: endpoint.port,
            weight: endpoint.weight,
            ready: endpoint.ready,
            labels: endpoint.labels,
        }
    }
}

impl From<wit_upstream::UpstreamInput> for UpstreamInput {
    fn from(input: wit_upstream::UpstreamInput) -> Self {
        Self {
            upstream: input.upstream.into(),
            cluster_name: input.cluster_name.into(),
            key: input.key,
            config: input.config,
            endpoints: input.endpoints.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<UpstreamOutput> for wit_upstream::UpstreamOutput {
    fn from(output: UpstreamOutput) -> Self {
        Self {
            cluster: output.cluster.into(),
            load_assignment: output.load_assignment.map(Into::into),
            functions: output.functions.into_iter().map(Into::into).collect(),
        }
    }
}

// === filter types ===

impl From<wit_filters::HookInput> for HookInput {
    fn from(input: wit_filters::HookInput) -> Self {
        Self {
            key: input.key,
            config: input.config,
            source: input.source.into(),
            target: input.target.into(),
        }
    }
}

impl From<HookOutput> for wit_filters::HookOutput {
    fn from(output: HookOutput) -> Self {
        Self {
            target: output.target.into(),
            http_filters: output.http_filters.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<HttpFilter> for wit_filters::HttpFilter {
    fn from(filter: HttpFilter) -> Self {
        Self {
            name: filter.name,
            stage: filter.stage.into(),
            config: filter.config.into(),
            disabled: filter.disabled,
        }
    }
}

impl From<Stage> for wit_filters::Stage {
    fn from(stage: Stage) -> Self {
        Self {
            name: stage.name.into(),
            position: stage.position.into(),
        }
    }
}

impl From<StageName> for wit_filters::StageName {
    fn from(name: StageName) -> Self {
        match name {
            StageName::Fault => Self::Fault,
            StageName::Cors => Self::Cors,
            StageName::Waf => Self::Waf,
            StageName::Authn => Self::Authn,
            StageName::Authz => Self::Authz,
            StageName::RateLimit => Self::RateLimit,
            StageName::Accepted => Self::Accepted,
            StageName::OutAuth => Self::OutAuth,
            StageName::Route => Self::Route,
        }
    }
}

impl From<StagePosition> for wit_filters::StagePosition {
    fn from(position: StagePosition) -> Self {
        match position {
            StagePosition::Before => Self::Before,
            StagePosition::During => Self::During,
            StagePosition::After => Self::After,
        }
    }
}

// === discovery types ===

impl From<wit_discovery::Document> for Document {
    fn from(document: wit_discovery::Document) -> Self {
        Self {
            source: document.source,
            content_type: document.content_type,
            body: document.body,
        }
    }
}

impl From<wit_discovery::DiscoveryInput> for DiscoveryInput {
    fn from(input: wit_discovery::DiscoveryInput) -> Self {
        Self {
            upstream: input.upstream.into(),
            key: input.key,
            config: input.config,
            document: input.document.into(),
        }
    }
}
