//! `TlsOverlay` (feature `tls`) on loopback, with certificates made at test
//! time (rcgen):
//!
//! - the overlay passes the overlay conformance suite, with mutual TLS;
//! - two nodes with mutual TLS authenticate and run remote asks (the token
//!   handshake runs inside TLS);
//! - a peer whose certificate comes from an untrusted CA is refused, both
//!   as a server (the dial fails, typed) and as a client (the accepting
//!   side refuses the handshake and counts it); it never becomes a peer;
//! - a peer whose certificate names another node is refused: as a server
//!   (the dial fails with `NameMismatch`) and as a client claiming a name
//!   its certificate lacks (the node refuses it as `peer_identity`);
//! - bad PEM input and a key that does not match its certificate are typed
//!   errors.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axactor::actor;
use axactor_cluster::overlay::conformance;
use axactor_cluster::overlay::{Overlay, PemSource, TlsConfig, TlsConfigError, TlsFailure, TlsOverlay};
use axactor_cluster::{ClusterNode, KeyedConfig, LeaseStore, MemoryLeaseStore, NodeId, OverlayError, TcpOverlay};
use axactor_tests::cluster::{BOUND, connected, eventually};
use axactor_tests::keyed::{owns_all, pinned_cfg};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tokio::time::timeout;

/// A certificate authority made for one test.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A certificate naming `names` (DNS SANs) and its key, as PEM.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("node key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("node params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("node"));
        let cert = params.signed_by(&key, &self.issuer).expect("node certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// TLS settings with a certificate from this CA naming `names`, trusting `trusted`.
    fn config(&self, names: &[&str], trusted: &Ca) -> TlsConfig {
        let (cert, key) = self.issue(names);
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes(), trusted.pem.as_bytes()).expect("valid TLS config")
    }
}

/// A TLS overlay over a shared TCP address book.
fn overlay(book: &TcpOverlay, tls: &TlsConfig) -> TlsOverlay {
    TlsOverlay::new(book.clone(), tls).expect("TLS overlay")
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Starts `name` on an ephemeral port and publishes its address.
async fn start(name: &str, tls: &TlsOverlay, store: &Arc<MemoryLeaseStore>) -> ClusterNode {
    tls.insert_address(name, any_port());
    let store: Arc<dyn LeaseStore> = store.clone();
    let node = ClusterNode::start(NodeId::new(name), store, tls.clone(), pinned_cfg()).await.expect("node starts");
    tls.insert_address(name, node.local_addr().expect("a TCP node has an address"));
    node
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    timeout(BOUND, f).await.expect("finished in time")
}

/// Waits until `tls` has counted a handshake failure for `reason`.
async fn failure_counted(tls: &TlsOverlay, reason: TlsFailure) {
    within(async {
        while tls.stats().failures.get(&reason).copied().unwrap_or(0) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_tls_overlay_passes_the_conformance_suite() {
    let ca = Ca::new("conformance ca");
    let mut names: Vec<String> = conformance::listener_names().iter().map(|n| n.to_string()).collect();
    names.push("conformance-dialer".into());
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let tls = overlay(&TcpOverlay::new(HashMap::new()), &ca.config(&names, &ca));
    conformance::run_all(&tls).await.expect("TlsOverlay conforms");
    let stats = tls.stats();
    assert!(stats.handshakes_accepted > 0 && stats.handshakes_dialed > 0, "{stats:?}");
    assert!(stats.failures.is_empty(), "no handshake failed: {stats:?}");
}

/// Answers with its node's name and the argument doubled.
#[derive(Debug)]
pub struct Doubler {
    node: String,
}

#[actor(remote)]
impl Doubler {
    /// The node this activation runs on, and `n * 2`.
    #[msg]
    fn double(&mut self, n: u64) -> (String, u64) {
        (self.node.clone(), n * 2)
    }
}

#[tokio::test]
async fn two_nodes_with_mutual_tls_run_remote_asks() {
    const REGISTRY: &str = "doublers";
    let ca = Ca::new("cluster ca");
    let book = TcpOverlay::new(HashMap::new());
    let (tls_a, tls_b) = (overlay(&book, &ca.config(&["a"], &ca)), overlay(&book, &ca.config(&["b"], &ca)));
    let store = Arc::new(MemoryLeaseStore::new());
    let a = start("a", &tls_a, &store).await;
    let b = start("b", &tls_b, &store).await;
    connected(&a, &b).await;
    let _on_b = b.keyed(REGISTRY, KeyedConfig::new(4), |_: &str| Doubler { node: "b".into() }).expect("b hosts");
    owns_all(&b, REGISTRY, 4).await;
    let on_a = a.keyed(REGISTRY, KeyedConfig::new(4), |_: &str| Doubler { node: "a".into() }).expect("a hosts");
    for n in 0..20u64 {
        let reply = within(on_a.get(format!("key-{n}")).double(n)).await.expect("remote ask over TLS");
        assert_eq!(reply, ("b".to_string(), n * 2));
    }
    let (sa, sb) = (tls_a.stats(), tls_b.stats());
    assert!(sa.handshakes_dialed + sa.handshakes_accepted > 0, "{sa:?}");
    assert!(sa.failures.is_empty() && sb.failures.is_empty(), "{sa:?} {sb:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_server_with_a_certificate_from_an_untrusted_ca_is_refused() {
    let (ca, rogue) = (Ca::new("cluster ca"), Ca::new("rogue ca"));
    let book = TcpOverlay::new(HashMap::new());
    let honest = overlay(&book, &ca.config(&["a"], &ca));
    let mallory = overlay(&book, &rogue.config(&["m"], &ca));
    let _listening = conformance::OverlayHarness::listen(&mallory, &NodeId::new("m")).await.expect("listen");
    let r = within(honest.dial(&NodeId::new("a"), &NodeId::new("m"))).await;
    assert!(matches!(r, Err(OverlayError::Tls(TlsFailure::UntrustedCertificate))), "{r:?}");
    assert_eq!(honest.stats().failures.get(&TlsFailure::UntrustedCertificate), Some(&1));
}

#[tokio::test]
async fn a_node_with_a_certificate_from_an_untrusted_ca_never_becomes_a_peer() {
    let (ca, rogue) = (Ca::new("cluster ca"), Ca::new("rogue ca"));
    let book = TcpOverlay::new(HashMap::new());
    let honest = overlay(&book, &ca.config(&["a"], &ca));
    // Mallory trusts our CA and knows the token: only its certificate is wrong.
    let mallory = overlay(&book, &rogue.config(&["m"], &ca));
    let store = Arc::new(MemoryLeaseStore::new());
    let a = start("a", &honest, &store).await;
    let m = start("m", &mallory, &store).await;
    // Both dial each other (the membership loop): a refuses m's server
    // certificate, and m's client certificate.
    failure_counted(&honest, TlsFailure::UntrustedCertificate).await;
    eventually(&a, "a refused m as a client too", |_| {
        honest.stats().failures.get(&TlsFailure::UntrustedCertificate).copied().unwrap_or(0) >= 2
    })
    .await;
    assert!(a.inspect().peer("m").is_none(), "m was never authenticated");
    assert!(m.inspect().peer("a").is_none(), "m never reached a");
    a.shutdown().await;
    m.shutdown().await;
}

#[tokio::test]
async fn a_server_whose_certificate_names_another_node_is_refused() {
    let ca = Ca::new("cluster ca");
    let book = TcpOverlay::new(HashMap::new());
    let honest = overlay(&book, &ca.config(&["a"], &ca));
    // b's certificate is genuine, but names c.
    let wrong = overlay(&book, &ca.config(&["c"], &ca));
    let _listening = conformance::OverlayHarness::listen(&wrong, &NodeId::new("b")).await.expect("listen");
    let r = within(honest.dial(&NodeId::new("a"), &NodeId::new("b"))).await;
    assert!(matches!(r, Err(OverlayError::Tls(TlsFailure::NameMismatch))), "{r:?}");
    assert_eq!(honest.stats().failures.get(&TlsFailure::NameMismatch), Some(&1));
}

#[tokio::test]
async fn a_client_claiming_a_name_its_certificate_lacks_is_refused() {
    let ca = Ca::new("cluster ca");
    let book = TcpOverlay::new(HashMap::new());
    let honest = overlay(&book, &ca.config(&["a"], &ca));
    // Node "m" holds a genuine certificate for "c" (and the token).
    let mallory = overlay(&book, &ca.config(&["c"], &ca));
    let store = Arc::new(MemoryLeaseStore::new());
    let a = start("a", &honest, &store).await;
    let m = start("m", &mallory, &store).await;
    // m dials a: TLS succeeds, then a refuses the handshake in which m
    // claims to be "m". a dials m: m's server certificate does not name m.
    eventually(&a, "a refused m's claim", |s| s.counters.handshake_failures.contains_key("peer_identity")).await;
    failure_counted(&honest, TlsFailure::NameMismatch).await;
    assert!(a.inspect().peer("m").is_none(), "m was never authenticated");
    a.shutdown().await;
    m.shutdown().await;
}

#[test]
fn bad_pem_and_mismatched_keys_are_typed_errors() {
    let ca = Ca::new("cluster ca");
    let (cert, key) = ca.issue(&["a"]);
    let (_, other_key) = ca.issue(&["b"]);
    let missing = TlsConfig::new(
        PemSource::file("/nonexistent/axactor/a.crt"),
        PemSource::memory(key.clone()),
        PemSource::memory(ca.pem.clone()),
    );
    assert!(matches!(missing, Err(TlsConfigError::Read { kind: std::io::ErrorKind::NotFound, .. })), "{missing:?}");
    let no_cert = TlsConfig::from_pem(b"not pem at all", key.as_bytes(), ca.pem.as_bytes());
    assert!(matches!(no_cert, Err(TlsConfigError::Missing { what: "certificate" })), "{no_cert:?}");
    let no_key = TlsConfig::from_pem(cert.as_bytes(), cert.as_bytes(), ca.pem.as_bytes());
    assert!(matches!(no_key, Err(TlsConfigError::Missing { what: "private key" })), "{no_key:?}");
    let mismatched = TlsConfig::from_pem(cert.as_bytes(), other_key.as_bytes(), ca.pem.as_bytes()).expect("parses");
    let r = TlsOverlay::new(TcpOverlay::new(HashMap::new()), &mismatched);
    assert!(matches!(r, Err(TlsConfigError::Rustls(_))), "{r:?}");
}
