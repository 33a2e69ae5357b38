//! Section `tls` (feature `tls`): what TLS costs. Two clusters of nodes
//! `a`, `b`, one over `TcpOverlay` and one over `TlsOverlay` (mutual TLS,
//! certificates from one CA made at start), in the same run; rounds
//! alternate TLS and TCP; the ratio is TLS / TCP.

use axactor_cluster::TcpOverlay;
use axactor_cluster::overlay::{TlsConfig, TlsOverlay};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use tokio::runtime::Runtime;

use crate::measure::{Latency, latency, throughput};
use crate::nodes::{Cluster, Remote, Transport};
use crate::report::{self, Row};
use crate::{CONCURRENCY, Sizes, on_worker};

/// A CA made for one cluster.
pub(crate) struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new() -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A TLS overlay for node `name` over the shared address book `tcp`.
    pub(crate) fn overlay(&self, tcp: &TcpOverlay, name: &str) -> TlsOverlay {
        let key = KeyPair::generate().expect("node key");
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("node params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("node certificate");
        let tls = TlsConfig::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes(), self.pem.as_bytes())
            .expect("TLS config");
        TlsOverlay::new(tcp.clone(), &tls).expect("TLS overlay")
    }
}

/// The `tls` section.
pub(crate) fn section(rt: &Runtime, sz: Sizes) {
    let tcp = on_worker(rt, Cluster::start(&["a", "b"], Transport::Tcp));
    let tls = on_worker(rt, Cluster::start(&["a", "b"], Transport::Tls));
    let tcp_ref = Remote(tcp.keyed[0].get(tcp.key_owned_by("b").as_str()));
    let tls_ref = Remote(tls.keyed[0].get(tls.key_owned_by("b").as_str()));
    println!(
        "## TLS against TCP\n\nTwo clusters `a`, `b` in this process: one over `TcpOverlay`, one over `TlsOverlay` \
         (TLS 1.3, mutual TLS, ring); asks from `a` to a key held by `b`; rounds alternate TLS and TCP.\n"
    );
    let (mut lat_tls, mut lat_tcp): (Vec<Latency>, Vec<Latency>) = (Vec::new(), Vec::new());
    let mut tput: Vec<(Vec<f64>, Vec<f64>)> = CONCURRENCY.iter().map(|_| (Vec::new(), Vec::new())).collect();
    for _ in 0..sz.rounds {
        let mut r = tls_ref.clone();
        lat_tls.push(on_worker(rt, async move { latency(&mut r, sz.warm, sz.asks).await }));
        let mut r = tcp_ref.clone();
        lat_tcp.push(on_worker(rt, async move { latency(&mut r, sz.warm, sz.asks).await }));
        for (i, &c) in CONCURRENCY.iter().enumerate() {
            let (a, b) = (tls_ref.clone(), tcp_ref.clone());
            let warm = sz.warm / c;
            tput[i].0.push(on_worker(rt, async move { throughput(&a, c, sz.pipelined, warm).await }));
            tput[i].1.push(on_worker(rt, async move { throughput(&b, c, sz.pipelined, warm).await }));
        }
    }
    let p = |v: &[Latency], f: fn(&Latency) -> f64| v.iter().map(f).collect::<Vec<_>>();
    let n = sz.asks;
    let mut rows = vec![
        Row::new(format!("sequential ask p50 ({n} asks)"), "µs", p(&lat_tls, |l| l.p50), p(&lat_tcp, |l| l.p50)),
        Row::new(format!("sequential ask p99 ({n} asks)"), "µs", p(&lat_tls, |l| l.p99), p(&lat_tcp, |l| l.p99)),
    ];
    for (i, c) in CONCURRENCY.iter().enumerate() {
        let (o, r) = tput[i].clone();
        rows.push(Row::new(format!("pipelined throughput, {c} asker(s), {} asks", sz.pipelined), "asks/s", o, r));
    }
    report::table("TLS", "TCP", &rows);
    tcp.kill_all();
    tls.kill_all();
}
