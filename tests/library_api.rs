//! The library's curated API, used as an embedder would (no CLI): an
//! [`outport::Engine`], a [`outport::Session`] with a policy and a reporter
//! of its own, output specs, and the per-instance results it returns.

use std::sync::{Arc, Mutex};

use outport::{
    Engine, EngineConfig, FailureKind, Limits, LogLevel, OutputSpec, Policy, Reporter, Session,
    Status,
};

use crate::common::*;

/// A reporter that keeps every line it is given.
#[derive(Default)]
struct Lines(Mutex<Vec<(String, String)>>);

impl Reporter for Lines {
    fn log(&self, instance: &str, _level: LogLevel, message: &str) {
        let mut lines = self.0.lock().unwrap();
        lines.push((instance.to_string(), message.to_string()));
    }

    fn progress(&self, _instance: &str, _label: &str, _current: u64, _total: u64) {}
}

/// An engine without a compile cache, and the sample image.
fn setup() -> (Arc<Engine>, Arc<outport_image::Image>) {
    let config = EngineConfig {
        cache_dir: None,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::new(config).unwrap());
    let image = outport_image::open(path_str(&sample_image())).unwrap();
    (engine, Arc::new(image))
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn a_session_exports_to_several_outputs_and_keeps_their_results_apart() {
    let (engine, image) = setup();
    let work = tempdir();
    let reporter = Arc::new(Lines::default());
    let session = Session::new(engine, reporter.clone(), Limits::default());
    let specs: Vec<OutputSpec> = [
        format!(
            "type=oci,dest={},id=first",
            path_str(&work.path().join("a.tar"))
        ),
        format!(
            "type=docker,dest={},id=second,name=example.com/app:1",
            path_str(&work.path().join("b.tar"))
        ),
    ]
    .iter()
    .map(|s| OutputSpec::parse(s).unwrap())
    .collect();
    outport::assign_ids(&specs).unwrap();
    let result = block_on(session.export(image, &specs)).unwrap();
    assert!(result.all_ok(), "{:?}", result.exporters);
    let ids: Vec<&str> = result.exporters.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["first", "second"]);
    for r in &result.exporters {
        assert!(
            r.response["containerimage.digest"].starts_with("sha256:"),
            "{:?}",
            r.response
        );
    }
    assert_eq!(
        result.exporters[1].response["image.name"],
        "example.com/app:1"
    );
    LayoutFiles::from_tar(&work.path().join("a.tar")).verify();
    // The embedder's reporter heard from both instances.
    let lines = reporter.0.lock().unwrap();
    for id in ["first", "second"] {
        assert!(lines.iter().any(|(i, _)| i == id), "{lines:?}");
    }
}

#[test]
fn a_policy_limit_fails_one_instance_with_a_kind_and_code() {
    let (engine, image) = setup();
    let work = tempdir();
    let policy = Policy::parse("[components.oci.limits]\noutput-bytes = 100\n").unwrap();
    let session = Session::new(engine, Arc::new(outport::Silent), Limits::default()).policy(policy);
    let specs = [
        OutputSpec::parse(&format!(
            "type=oci,dest={},id=small",
            path_str(&work.path().join("a.tar"))
        ))
        .unwrap(),
        OutputSpec::parse(&format!(
            "type=tar,dest={},id=other",
            path_str(&work.path().join("b.tar"))
        ))
        .unwrap(),
    ];
    let result = block_on(session.export(image, &specs)).unwrap();
    let Status::Failed(failure) = &result.exporters[0].status else {
        panic!("{:?}", result.exporters[0]);
    };
    assert_eq!(
        failure.kind,
        FailureKind::Limit {
            name: "output",
            value: 100
        },
        "{failure}"
    );
    assert_eq!(failure.kind.code(), "limit.output");
    assert!(
        failure.message.contains("output limit of 100 bytes"),
        "{failure}"
    );
    assert!(!work.path().join("a.tar").exists());
    assert!(result.exporters[1].is_ok(), "{:?}", result.exporters[1]);
}
