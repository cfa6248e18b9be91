//! Gateway API conformance for Weir: the echo backend the tests route to and the
//! harness that plays the cluster's part around a real `weir serve` and real Envoys.

pub mod certs;
pub mod client;
pub mod cluster;
pub mod echo;
pub mod expect;
pub mod harness;
pub mod manifests;
pub mod processes;
pub mod report;
pub mod status;
pub mod suite;
pub mod suite_extended;
pub mod websocket;
