//! Endpoint discovery: a Service's EndpointSlices folded into the endpoints behind each
//! slice port name, kept by the store as slices come and go. Translation then reads a
//! Service port's endpoints with one lookup, instead of walking and filtering its slices
//! for every cluster of every pass.
//!
//! EndpointSlice semantics: only `IPv4` and `IPv6` slices count; an endpoint is its
//! first address; the ready endpoints are served, or, only when none is ready, the
//! serving ones (terminating endpoints that still serve). A condition left unset counts
//! as ready, and `serving` defaults to `ready`.

use super::{ContentHash, Entry};

/// One endpoint: an address and the port behind a Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// IP address.
    pub address: String,
    /// The slice's port number for the Service port.
    pub port: u16,
    /// Ready for new requests (false: only serving, as a terminating endpoint is).
    pub ready: bool,
}

/// The endpoints of one Service's EndpointSlices, by slice port name.
#[derive(Debug, PartialEq, Eq)]
pub struct ServiceEndpoints {
    /// A digest of the slices these were folded from (their hashes, in name order).
    hash: ContentHash,
    /// By port name (`""` for an unnamed port), each list sorted and without repeats.
    ports: Vec<(String, Box<[Endpoint]>)>,
}

impl ServiceEndpoints {
    /// Folds `slices` (one Service's, by name) into endpoints per port name.
    pub(super) fn of(slices: &[(String, Entry)]) -> Self {
        let hash = match slices {
            [(_, only)] => only.hash,
            _ => {
                let bytes: Vec<u8> = slices
                    .iter()
                    .flat_map(|(_, e)| e.hash.0.to_be_bytes())
                    .collect();
                ContentHash::of_bytes(&bytes)
            }
        };
        // (port name, ready, serving-but-not-ready)
        let mut found: Vec<(&str, Vec<Endpoint>, Vec<Endpoint>)> = Vec::new();
        for slice in slices
            .iter()
            .filter_map(|(_, e)| e.object.as_endpoint_slice())
        {
            if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
                continue;
            }
            let ports = slice.ports.as_deref().unwrap_or_default();
            for (i, p) in ports.iter().enumerate() {
                let name = p.name.as_deref().unwrap_or_default();
                // The first entry of a name is the slice's port for it.
                if ports[..i]
                    .iter()
                    .any(|q| q.name.as_deref().unwrap_or_default() == name)
                {
                    continue;
                }
                let Some(port) = p.port.and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                let at = match found.iter().position(|(n, ..)| *n == name) {
                    Some(at) => at,
                    None => {
                        found.push((name, Vec::new(), Vec::new()));
                        found.len() - 1
                    }
                };
                let (_, ready, serving) = &mut found[at];
                for ep in &slice.endpoints {
                    let Some(address) = ep.addresses.first() else {
                        continue;
                    };
                    let cond = ep.conditions.as_ref();
                    let is_ready = cond.and_then(|c| c.ready).unwrap_or(true);
                    let is_serving = cond.and_then(|c| c.serving).unwrap_or(is_ready);
                    let endpoint = Endpoint {
                        address: address.clone(),
                        port,
                        ready: is_ready,
                    };
                    if is_ready {
                        ready.push(endpoint);
                    } else if is_serving {
                        serving.push(endpoint);
                    }
                }
            }
        }
        let mut ports: Vec<(String, Box<[Endpoint]>)> = found
            .into_iter()
            .map(|(name, ready, serving)| {
                let mut chosen = if ready.is_empty() { serving } else { ready };
                chosen.sort();
                chosen.dedup();
                (name.to_string(), chosen.into())
            })
            .collect();
        ports.sort_by(|a, b| a.0.cmp(&b.0));
        Self { hash, ports }
    }

    /// The digest of the slices these endpoints came from: equal digests, equal endpoints.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }

    /// The endpoints behind the slice port named `name` (`""`: the unnamed port).
    pub fn port(&self, name: &str) -> &[Endpoint] {
        match self.ports.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => &self.ports[i].1,
            Err(_) => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::model::Object;
    use crate::model::gateway_api::EndpointSlice;

    fn entry(slice: serde_json::Value) -> (String, Entry) {
        let slice: EndpointSlice = serde_json::from_value(slice).unwrap();
        let object = Object::from(slice);
        let name = object.name().to_string();
        let hash = ContentHash::of(&object);
        (name, Entry { object, hash })
    }

    fn slice(
        name: &str,
        ports: serde_json::Value,
        endpoints: serde_json::Value,
    ) -> (String, Entry) {
        entry(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "a",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
        }))
    }

    fn listed(eps: &[Endpoint]) -> Vec<String> {
        eps.iter()
            .map(|e| format!("{}:{}", e.address, e.port))
            .collect()
    }

    #[test]
    fn ready_endpoints_of_every_slice_are_sorted_and_deduplicated_by_port_name() {
        let slices = [
            slice(
                "web-1",
                json!([{"name": "http", "port": 8080}, {"name": "admin", "port": 9000}]),
                json!([{"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.1", "10.9.9.9"]}]),
            ),
            slice(
                "web-2",
                json!([{"name": "http", "port": 8080}]),
                json!([{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.3"],
                        "conditions": {"ready": false, "serving": true}}]),
            ),
        ];
        let eps = ServiceEndpoints::of(&slices);
        assert_eq!(listed(eps.port("http")), ["10.0.0.1:8080", "10.0.0.2:8080"]);
        assert_eq!(
            listed(eps.port("admin")),
            ["10.0.0.1:9000", "10.0.0.2:9000"]
        );
        assert!(eps.port("grpc").is_empty());
        assert!(eps.port("").is_empty());
    }

    #[test]
    fn serving_endpoints_stand_in_only_when_none_is_ready() {
        let terminating = |ip: &str, serving: bool| {
            json!({"addresses": [ip],
                   "conditions": {"ready": false, "serving": serving, "terminating": true}})
        };
        let slices = [slice(
            "web-1",
            json!([{"port": 80}]),
            json!([
                terminating("10.0.0.5", true),
                terminating("10.0.0.6", false)
            ]),
        )];
        let eps = ServiceEndpoints::of(&slices);
        assert_eq!(listed(eps.port("")), ["10.0.0.5:80"]);
        assert!(!eps.port("")[0].ready);
    }

    #[test]
    fn slices_of_other_address_types_or_without_the_port_are_left_out() {
        let mut fqdn = slice(
            "web-1",
            json!([{"port": 80}]),
            json!([{"addresses": ["a.example"]}]),
        );
        if let Object::EndpointSlice(s) = &mut fqdn.1.object {
            Arc::make_mut(s).address_type = "FQDN".into();
        }
        let no_port = slice(
            "web-2",
            json!([{"name": "x"}]),
            json!([{"addresses": ["10.0.0.7"]}]),
        );
        let eps = ServiceEndpoints::of(&[fqdn, no_port]);
        assert!(eps.port("").is_empty());
        assert!(eps.port("x").is_empty());
    }

    #[test]
    fn the_digest_follows_the_slices() {
        let one = slice(
            "web-1",
            json!([{"port": 80}]),
            json!([{"addresses": ["10.0.0.1"]}]),
        );
        let two = slice(
            "web-2",
            json!([{"port": 80}]),
            json!([{"addresses": ["10.0.0.2"]}]),
        );
        let a = ServiceEndpoints::of(std::slice::from_ref(&one));
        let b = ServiceEndpoints::of(&[one.clone(), two.clone()]);
        assert_ne!(a.hash(), b.hash());
        assert_eq!(b.hash(), ServiceEndpoints::of(&[one, two]).hash());
    }
}
