//! Trimming decoded objects to the memory they need.
//!
//! A deserializer that is not told a list's length grows its `Vec` by doubling, so a
//! Service's one port or an EndpointSlice's three endpoints sit in room for four; at
//! 10,000 Services that slack is tens of MiB. The sources pass the kinds that come in
//! thousands through here before storing them. Content is unchanged.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The Service with its lists no larger than their contents.
pub fn service(mut service: Service) -> Service {
    if let Some(spec) = &mut service.spec {
        shrink(&mut spec.ports);
        shrink(&mut spec.cluster_ips);
        shrink(&mut spec.ip_families);
        shrink(&mut spec.external_ips);
    }
    service
}

/// The EndpointSlice with its lists no larger than their contents.
pub fn endpoint_slice(mut slice: EndpointSlice) -> EndpointSlice {
    slice.endpoints.shrink_to_fit();
    for endpoint in &mut slice.endpoints {
        endpoint.addresses.shrink_to_fit();
    }
    shrink(&mut slice.ports);
    slice
}

fn shrink<T>(list: &mut Option<Vec<T>>) {
    if let Some(list) = list {
        list.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_lists_keep_their_content_and_lose_their_slack() {
        let slice: EndpointSlice = serde_yaml_ng::from_str(
            "addressType: IPv4\nmetadata: {name: s}\nendpoints:\n- addresses: [10.0.0.1]\n- addresses: [10.0.0.2]\n- addresses: [10.0.0.3]\nports:\n- port: 80\n",
        )
        .unwrap();
        let before = slice.clone();
        let compact = endpoint_slice(slice);
        assert_eq!(compact, before);
        assert_eq!(compact.endpoints.capacity(), 3);
        assert!(
            compact
                .endpoints
                .iter()
                .all(|e| e.addresses.capacity() == 1)
        );
        assert_eq!(compact.ports.as_ref().map(Vec::capacity), Some(1));

        let svc: Service =
            serde_yaml_ng::from_str("metadata: {name: web}\nspec:\n  ports:\n  - port: 80\n")
                .unwrap();
        let before = svc.clone();
        let compact = service(svc);
        assert_eq!(compact, before);
        let ports = compact.spec.as_ref().and_then(|s| s.ports.as_ref());
        assert_eq!(ports.map(Vec::capacity), Some(1));
    }
}
