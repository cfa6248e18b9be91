use weir_plugin_sdk::__private::upstream_type::exports::weir::plugin::upstream::*;
use weir_plugin_sdk::__private::upstream_type::weir::plugin::types::PluginError;
pub struct P;
impl Guest for P {
    fn validate(_k: String, _c: String) -> Result<(), PluginError> { Ok(()) }
    fn translate(_i: UpstreamInput) -> Result<UpstreamOutput, PluginError> { Err(PluginError::Internal("x".into())) }
}
weir_plugin_sdk::__export_upstream_type!(P with_types_in weir_plugin_sdk::__private::upstream_type);
