//! The harness: one `weir serve` on a temporary manifest directory, the base manifests
//! applied once, then each test's manifests applied, run and removed in turn (as the
//! suite's applier does with cleanup), Envoys started per Gateway on demand.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::expect::{Case, Timing, eventually};
use crate::manifests::{self, kind, name, namespace};
use crate::processes::{Envoy, Weir, collect_route_names};

/// The harness's options.
#[derive(Clone, Debug)]
pub struct Options {
    /// The vendored manifests (`tests/conformance`).
    pub manifests: PathBuf,
    /// Convergence timing for each case.
    pub timing: Timing,
    /// Keep the working directory (manifests, logs) instead of deleting it.
    pub keep: bool,
}

/// The running cluster emulation.
pub struct Harness {
    opts: Options,
    work: tempfile::TempDir,
    /// The watched manifest directory.
    pub dir: PathBuf,
    logs: PathBuf,
    weir: Weir,
    cluster: Cluster,
    base_docs: Vec<Value>,
    test_docs: Vec<Value>,
    envoys: BTreeMap<String, Envoy>,
    synced: BTreeSet<String>,
    addresses: BTreeMap<String, Ipv4Addr>,
    bind: bool,
}

const BASE_FILE: &str = "base.yaml";
const TEST_FILE: &str = "test.yaml";
const ENDPOINTS_FILE: &str = "endpoints.yaml";

impl Harness {
    /// Starts the emulation: base manifests written, echo pods and `weir serve` started.
    pub fn start(opts: Options) -> anyhow::Result<Self> {
        let work = tempfile::Builder::new()
            .prefix("weir-conformance-")
            .tempdir()?;
        let dir = work.path().join("manifests");
        let logs = work.path().join("logs");
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(&logs)?;
        let echo = crate::cluster::sibling_binary("weir-echo")?;
        let mut cluster = Cluster::new(echo, logs.clone());
        let mut base_docs = manifests::load(&opts.manifests.join("base/manifests.yaml"))?;
        base_docs.insert(0, manifests::gateway_class());
        base_docs.extend(crate::certs::suite_secrets()?);
        cluster.start_deployments(BASE_FILE, &base_docs)?;
        manifests::write(&dir.join(BASE_FILE), &weir_docs(&base_docs))?;
        manifests::write(
            &dir.join(ENDPOINTS_FILE),
            &cluster.endpoint_slices(&base_docs),
        )?;
        let weir = Weir::start(&dir, &logs)?;
        let bind = crate::processes::bootstrap_has_bind_address();
        Ok(Self {
            opts,
            work,
            dir,
            logs,
            weir,
            cluster,
            base_docs,
            test_docs: Vec::new(),
            envoys: BTreeMap::new(),
            synced: BTreeSet::new(),
            addresses: BTreeMap::new(),
            bind,
        })
    }

    /// Whether each Gateway gets its own address (`weir bootstrap --bind-address`);
    /// without it only one Envoy runs at a time, on 0.0.0.0.
    pub fn per_gateway_addresses(&self) -> bool {
        self.bind
    }

    /// Where logs are kept (with `keep`).
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// Applies a test's manifest files (names under `tests/`).
    pub fn apply(&mut self, files: &[&str]) -> anyhow::Result<()> {
        let mut docs = Vec::new();
        for f in files {
            docs.extend(manifests::load(&self.opts.manifests.join("tests").join(f))?);
        }
        self.cluster.start_deployments(TEST_FILE, &docs)?;
        self.test_docs = docs;
        self.write_test_docs()
    }

    /// Rewrites the test's documents (after a mutation) and the EndpointSlices.
    pub fn write_test_docs(&mut self) -> anyhow::Result<()> {
        let mut all = self.base_docs.clone();
        all.extend(self.test_docs.iter().cloned());
        let mut slices = self.cluster.endpoint_slices(&all);
        // EndpointSlices a test brings itself (HTTPRouteServiceTypes) get the
        // infra-backend-v1 pods' addresses, as the Go test patches them.
        let v1: Vec<String> = self
            .cluster
            .pods
            .iter()
            .filter(|p| p.name.starts_with("infra-backend-v1-"))
            .map(|p| p.ip.to_string())
            .collect();
        let mut test_docs = Vec::new();
        for doc in &self.test_docs {
            if kind(doc) == "EndpointSlice" {
                let mut doc = doc.clone();
                if doc.get("addressType").and_then(Value::as_str) != Some("IPv4") {
                    continue;
                }
                let endpoints: Vec<Value> = v1
                    .iter()
                    .map(|ip| serde_json::json!({"addresses": [ip], "conditions": {"ready": true}}))
                    .collect();
                doc["endpoints"] = Value::Array(endpoints);
                slices.push(doc);
                continue;
            }
            test_docs.push(doc.clone());
        }
        manifests::write(&self.dir.join(TEST_FILE), &weir_docs(&test_docs))?;
        manifests::write(&self.dir.join(ENDPOINTS_FILE), &slices)?;
        self.synced.clear();
        Ok(())
    }

    /// Edits the test document `kind` `name` as a client would (the generation is
    /// bumped as the API server does) and rewrites the files.
    pub fn mutate(
        &mut self,
        kind_: &str,
        name_: &str,
        edit: impl FnOnce(&mut Value),
    ) -> anyhow::Result<()> {
        let doc = self
            .test_docs
            .iter_mut()
            .find(|d| kind(d) == kind_ && name(d) == name_)
            .with_context(|| format!("no {kind_} {name_} in the test's manifests"))?;
        edit(doc);
        let generation = doc
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        doc["metadata"]["generation"] = Value::from(generation + 1);
        self.write_test_docs()
    }

    /// The current test documents (to mutate).
    pub fn test_docs_mut(&mut self) -> &mut Vec<Value> {
        &mut self.test_docs
    }

    /// Removes the test's manifests, its pods and the Envoys of its Gateways.
    pub fn cleanup(&mut self) -> anyhow::Result<()> {
        let gateways: Vec<String> = self
            .test_docs
            .iter()
            .filter(|d| kind(d) == "Gateway")
            .map(|d| format!("{}/{}", namespace(d), name(d)))
            .collect();
        for gw in gateways {
            self.envoys.remove(&gw);
        }
        self.test_docs.clear();
        self.cluster.stop_owned_by(TEST_FILE);
        let _ = std::fs::remove_file(self.dir.join(TEST_FILE));
        let slices = self.cluster.endpoint_slices(&self.base_docs);
        manifests::write(&self.dir.join(ENDPOINTS_FILE), &slices)?;
        self.synced.clear();
        Ok(())
    }

    /// The `ns/name` of every HTTPRoute of the current test with a parentRef to
    /// Gateway `gateway` (`ns/name`).
    pub fn test_routes(&self, gateway: &str) -> Vec<String> {
        self.test_docs
            .iter()
            .filter(|d| kind(d) == "HTTPRoute")
            .filter(|d| {
                let ns = namespace(d);
                d.pointer("/spec/parentRefs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|p| {
                        let pns = p.get("namespace").and_then(Value::as_str).unwrap_or(ns);
                        let pname = p.get("name").and_then(Value::as_str).unwrap_or("");
                        let pkind = p.get("kind").and_then(Value::as_str).unwrap_or("Gateway");
                        pkind == "Gateway" && format!("{pns}/{pname}") == gateway
                    })
            })
            .map(|d| format!("{}/{}", namespace(d), name(d)))
            .collect()
    }

    /// The `ns/name` of every Gateway of the current test.
    pub fn gateway_names(&self) -> Vec<String> {
        self.test_docs
            .iter()
            .filter(|d| kind(d) == "Gateway")
            .map(|d| format!("{}/{}", namespace(d), name(d)))
            .collect()
    }

    /// The Gateway document `ns/name` (test or base).
    pub fn gateway_doc(&self, gateway: &str) -> Option<&Value> {
        self.test_docs
            .iter()
            .chain(&self.base_docs)
            .find(|d| kind(d) == "Gateway" && format!("{}/{}", namespace(d), name(d)) == gateway)
    }

    /// The Gateway's address for `port` (default: its first listener's port), with its
    /// Envoy started and holding the configuration Weir currently translates.
    pub fn address(&mut self, gateway: &str, port: Option<u16>) -> anyhow::Result<SocketAddr> {
        let doc = self
            .gateway_doc(gateway)
            .with_context(|| format!("no Gateway {gateway} in the manifests"))?;
        let port = port.unwrap_or_else(|| {
            doc.pointer("/spec/listeners/0/port")
                .and_then(Value::as_u64)
                .unwrap_or(80) as u16
        });
        self.ensure_envoy(gateway)?;
        let ip = self.addresses[gateway];
        Ok(SocketAddr::from((
            if self.bind { ip } else { Ipv4Addr::LOCALHOST },
            port,
        )))
    }

    fn ensure_envoy(&mut self, gateway: &str) -> anyhow::Result<()> {
        if !self.addresses.contains_key(gateway) {
            let ip = Ipv4Addr::new(
                127,
                crate::cluster::run_octet(),
                0,
                2 + self.addresses.len() as u8,
            );
            self.addresses.insert(gateway.to_string(), ip);
        }
        if let Some(envoy) = self.envoys.get_mut(gateway)
            && envoy.check_running().is_err()
        {
            self.envoys.remove(gateway);
        }
        if !self.envoys.contains_key(gateway) {
            if !self.bind {
                // Every Envoy would bind 0.0.0.0: only one at a time.
                self.envoys.clear();
            }
            let ip = self.addresses[gateway];
            let envoy = Envoy::start(gateway, &self.weir, ip, self.bind, &self.logs)?;
            self.envoys.insert(gateway.to_string(), envoy);
        }
        if !self.synced.contains(gateway) {
            self.sync(gateway)?;
            self.synced.insert(gateway.to_string());
        }
        Ok(())
    }

    /// Waits until the Gateway's Envoy has exactly the routes Weir translates for the
    /// current manifests, so no case is judged on a previous test's configuration.
    fn sync(&mut self, gateway: &str) -> anyhow::Result<()> {
        let expected = {
            let routes = self.weir.served_routes(gateway)?;
            let mut names = Vec::new();
            for rc in routes.as_array().into_iter().flatten() {
                collect_route_names(rc, &mut names);
            }
            names.sort();
            names
        };
        let deadline = Instant::now() + self.opts.timing.max;
        loop {
            let envoy = self.envoys.get_mut(gateway).context("no Envoy")?;
            envoy.check_running()?;
            let got = envoy.route_names().unwrap_or_default();
            if got == expected {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.weir.check_running()?;
                anyhow::bail!(
                    "Envoy for {gateway} did not get Weir's routes within {:?}: has {got:?}, Weir translates {expected:?}",
                    self.opts.timing.max
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs cases concurrently (as the suite's subtests do); the failures, described.
    pub fn run_cases(&mut self, cases: &[Case]) -> Result<(), String> {
        let mut targets = Vec::new();
        for case in cases {
            let addr = self
                .address(&case.gateway, case.port)
                .map_err(|e| format!("{e:#}"))?;
            targets.push((addr, case));
        }
        let timing = self.opts.timing;
        let failures: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = targets
                .iter()
                .map(|(addr, case)| s.spawn(move || eventually(*addr, case, timing)))
                .collect();
            handles
                .into_iter()
                .filter_map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("case panicked".into()))
                        .err()
                })
                .collect()
        });
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    }

    /// The status Weir reports for every object.
    pub fn status(&self) -> anyhow::Result<Value> {
        self.weir.status()
    }

    /// The pods whose name starts with `prefix`.
    pub fn pods(&self, prefix: &str) -> Vec<&crate::cluster::Pod> {
        self.cluster
            .pods
            .iter()
            .filter(|p| p.name.starts_with(prefix))
            .collect()
    }

    /// Timing of cases.
    pub fn timing(&self) -> Timing {
        self.opts.timing
    }

    /// Stops everything; keeps the working directory when asked to.
    pub fn finish(mut self) -> Option<PathBuf> {
        self.envoys.clear();
        self.cluster.pods.clear();
        if self.opts.keep {
            Some(self.work.keep())
        } else {
            None
        }
    }
}

/// The documents Weir reads (Deployments and ConfigMaps are the cluster's business;
/// leaving them out keeps Weir's log free of "not a kind Weir reads").
fn weir_docs(docs: &[Value]) -> Vec<Value> {
    docs.iter()
        .filter(|d| !matches!(kind(d), "Deployment" | "ConfigMap"))
        .cloned()
        .collect()
}
