//! The fake Kubernetes API server (a FAKE: no real apiserver can run in tests) answers
//! kube-rs typed clients the way the fleet manager and the shipper use them.

use std::time::Duration;

use bitesize_fake_kube::{start, Availability};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

fn pod(name: &str, node: &str, app: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running"},
    })
}

#[tokio::test]
async fn list_get_and_selectors() {
    let fake = start().await;
    fake.upsert(pod("a", "node-1", "web"));
    fake.upsert(pod("b", "node-2", "web"));
    fake.upsert(pod("c", "node-1", "db"));
    let pods: Api<Pod> = Api::namespaced(fake.client(), "shop");
    let names = |list: kube::core::ObjectList<Pod>| {
        list.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(pods.list(&ListParams::default()).await.unwrap()),
        ["a", "b", "c"]
    );
    let on_node_1 = ListParams::default().fields("spec.nodeName=node-1");
    assert_eq!(names(pods.list(&on_node_1).await.unwrap()), ["a", "c"]);
    let web_on_1 = on_node_1.labels("app=web");
    assert_eq!(names(pods.list(&web_on_1).await.unwrap()), ["a"]);
    let not_web = ListParams::default().labels("app notin (web)");
    assert_eq!(names(pods.list(&not_web).await.unwrap()), ["c"]);
    let all: Api<Pod> = Api::all(fake.client());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
    let other: Api<Pod> = Api::namespaced(fake.client(), "other");
    assert!(other
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let b = pods.get("b").await.unwrap();
    assert_eq!(b.spec.unwrap().node_name.as_deref(), Some("node-2"));
    match pods.get("zzz").await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    let requests = fake.requests();
    assert!(requests
        .iter()
        .any(|r| r.param("fieldSelector").as_deref() == Some("spec.nodeName=node-1")));
}

#[tokio::test]
async fn server_side_apply_creates_updates_and_removes_fields() {
    let fake = start().await;
    let maps: Api<ConfigMap> = Api::namespaced(fake.client(), "bitesize");
    let params = PatchParams::apply("bitesize").force();
    let first = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"a": "1", "b": "2"}},
        "data": {"x": "1"},
    });
    let created = maps
        .patch("cfg", &params, &Patch::Apply(&first))
        .await
        .unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    // The same apply again is a no-op: no new resourceVersion.
    let same = maps
        .patch("cfg", &params, &Patch::Apply(&first))
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    // Another writer's label survives; the manager's dropped label goes.
    fake.upsert({
        let mut o = fake.get("configmaps", Some("bitesize"), "cfg").unwrap();
        o["metadata"]["labels"]["other"] = json!("kept");
        o
    });
    let second = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"a": "1"}},
        "data": {"x": "2"},
    });
    let updated = maps
        .patch("cfg", &params, &Patch::Apply(&second))
        .await
        .unwrap();
    let labels = updated.metadata.labels.unwrap();
    assert_eq!(labels.get("other").map(String::as_str), Some("kept"));
    assert!(!labels.contains_key("b"));
    assert_eq!(updated.data.unwrap()["x"], "2");
    let apply = fake.requests().into_iter().find(|r| r.is_apply()).unwrap();
    assert_eq!(apply.path, "/api/v1/namespaces/bitesize/configmaps/cfg");
    assert_eq!(apply.param("fieldManager").as_deref(), Some("bitesize"));
    assert_eq!(apply.param("force").as_deref(), Some("true"));
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    maps.delete("cfg", &DeleteParams::default()).await.unwrap();
    assert!(fake.get("configmaps", Some("bitesize"), "cfg").is_none());
}

#[tokio::test]
async fn watch_streams_events_expires_and_goes_down() {
    let fake = start().await;
    fake.upsert(pod("a", "node-1", "web"));
    let pods: Api<Pod> = Api::namespaced(fake.client(), "shop");
    let list = pods.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let params = WatchParams::default()
        .fields("spec.nodeName=node-1")
        .timeout(10);
    let mut stream = pods.watch(&params, &rv).await.unwrap().boxed();
    fake.upsert(pod("b", "node-2", "web")); // other node: filtered out
    fake.upsert(pod("c", "node-1", "web"));
    let mut modified = pod("a", "node-1", "web");
    modified["metadata"]["labels"]["v"] = json!("2");
    fake.upsert(modified);
    fake.remove("pods", Some("shop"), "c");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(match event {
            WatchEvent::Added(p) => format!("ADDED {}", p.metadata.name.unwrap()),
            WatchEvent::Modified(p) => format!("MODIFIED {}", p.metadata.name.unwrap()),
            WatchEvent::Deleted(p) => format!("DELETED {}", p.metadata.name.unwrap()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["ADDED c", "MODIFIED a", "DELETED c"]);

    fake.expire_next_watch();
    let mut stream = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }

    let mut stream = pods
        .watch(&WatchParams::default().timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        stream.try_next().await.unwrap(),
        Some(WatchEvent::Added(_))
    ));
    fake.set_availability(Availability::ServiceUnavailable);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.try_next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the watch ends when the server goes down");
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 503),
        other => panic!("expected 503, got {other:?}"),
    }
    fake.set_availability(Availability::CloseConnections);
    assert!(pods.list(&ListParams::default()).await.is_err());
    fake.set_availability(Availability::Up);
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
}

#[tokio::test]
async fn runtime_watcher_recovers_from_410() {
    use kube::runtime::watcher;
    let fake = start().await;
    fake.upsert(pod("a", "node-1", "web"));
    let pods: Api<Pod> = Api::namespaced(fake.client(), "shop");
    fake.expire_next_watch();
    let mut events = watcher(pods, watcher::Config::default()).boxed();
    let mut names = Vec::new();
    let got_b = tokio::time::timeout(Duration::from_secs(20), async {
        let mut added_b = false;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitApply(p)) | Ok(watcher::Event::Apply(p)) => {
                    let name = p.metadata.name.unwrap();
                    if name == "a" && !added_b {
                        fake.upsert(pod("b", "node-1", "web"));
                        added_b = true;
                    }
                    names.push(name.clone());
                    if name == "b" {
                        return;
                    }
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(got_b.is_ok(), "watcher saw {names:?}");
}
