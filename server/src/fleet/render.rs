//! Desired state → the Kubernetes objects of the shipper fleet, as JSON manifests applied
//! with server-side apply. Every field here is owned by the field manager `bitesize`.

use serde_json::{json, Value};

use super::settings::FleetSettings;

/// The name of every object the fleet manager applies.
pub const NAME: &str = "bitesize-shipper";
/// Where the ConfigMap is mounted in the shipper container.
pub const CONFIG_DIR: &str = "/etc/bitesize-shipper";
/// The shipper's config file inside [`CONFIG_DIR`] (a ConfigMap key).
pub const CONFIG_FILE: &str = "shipper.yaml";
/// A ConfigMap key (and file next to the config) holding the config version, for shippers
/// to report which version they run.
pub const CONFIG_VERSION_FILE: &str = "config-version";
/// On the ConfigMap: the config version it holds. On the pod template: the config version
/// at the last rollout (a config change alone does not roll the shippers; they reload).
pub const CONFIG_VERSION_ANNOTATION: &str = "bitesize.io/config-version";
/// On the pod template: the shipper version (image tag).
pub const SHIPPER_VERSION_ANNOTATION: &str = "bitesize.io/shipper-version";
/// The shipper's non-root user and group (as the Helm chart's `shipper.uid`/`gid`).
pub const RUN_AS_USER: i64 = 10001;
/// The kubelet writes container logs `0640 root:root`: the group that may read them is
/// gid 0, given as a supplemental group to the non-root user (no capability needed).
pub const LOG_READER_GROUP: i64 = 0;
/// The image of the init container that hands the checkpoint directory (created root-owned
/// by the kubelet) to [`RUN_AS_USER`], with CAP_CHOWN alone.
pub const CHOWN_IMAGE: &str = "busybox:1.37.0";
/// The shipper's log filter.
pub const LOG_LEVEL: &str = "info,rdkafka=warn";

/// The labels on every object, and the DaemonSet's selector (the first one).
pub fn labels() -> Value {
    json!({
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/component": "shipper",
        "app.kubernetes.io/part-of": "bitesize",
        "app.kubernetes.io/managed-by": "bitesize",
    })
}

/// The label selector of the shipper pods.
pub fn pod_selector() -> String {
    format!("app.kubernetes.io/name={NAME}")
}

/// The five objects, in apply order.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifests {
    pub service_account: Value,
    pub cluster_role: Value,
    pub cluster_role_binding: Value,
    pub config_map: Value,
    pub daemon_set: Value,
}

impl Manifests {
    pub fn render(settings: &FleetSettings, namespace: &str) -> Manifests {
        let metadata = |namespaced: bool| {
            let mut m = json!({ "name": NAME, "labels": labels() });
            if namespaced {
                m["namespace"] = json!(namespace);
            }
            m
        };
        let service_account = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(true),
        });
        let cluster_role = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": metadata(false),
            // Pod metadata enrichment: nothing more.
            "rules": [{
                "apiGroups": [""],
                "resources": ["pods", "namespaces"],
                "verbs": ["get", "list", "watch"],
            }],
        });
        let cluster_role_binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata(false),
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME },
            "subjects": [{ "kind": "ServiceAccount", "name": NAME, "namespace": namespace }],
        });
        let mut config_map_meta = metadata(true);
        config_map_meta["annotations"] =
            json!({ CONFIG_VERSION_ANNOTATION: settings.config_version.to_string() });
        let config_map = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": config_map_meta,
            "data": {
                CONFIG_FILE: settings.config,
                CONFIG_VERSION_FILE: settings.config_version.to_string(),
            },
        });
        let daemon_set = json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": metadata(true),
            "spec": {
                "selector": { "matchLabels": { "app.kubernetes.io/name": NAME } },
                "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1 } },
                "template": {
                    "metadata": {
                        "labels": labels(),
                        "annotations": {
                            CONFIG_VERSION_ANNOTATION: settings.template_config_version.to_string(),
                            SHIPPER_VERSION_ANNOTATION: settings.version,
                        },
                    },
                    "spec": pod_spec(settings),
                },
            },
        });
        Manifests {
            service_account,
            cluster_role,
            cluster_role_binding,
            config_map,
            daemon_set,
        }
    }

    /// (kind, manifest) in apply order: identity and rights before the pods that use them.
    pub fn in_order(&self) -> [(&'static str, &Value); 5] {
        [
            ("ServiceAccount", &self.service_account),
            ("ClusterRole", &self.cluster_role),
            ("ClusterRoleBinding", &self.cluster_role_binding),
            ("ConfigMap", &self.config_map),
            ("DaemonSet", &self.daemon_set),
        ]
    }
}

/// The pod: the same shape as the Helm chart's `shipper-daemonset.yaml` (a test compares).
fn pod_spec(settings: &FleetSettings) -> Value {
    let shipper = settings.shipper();
    let checkpoint_dir = shipper.checkpoint_dir.display().to_string();
    json!({
        "serviceAccountName": NAME,
        // Pod and namespace metadata come from the Kubernetes API.
        "automountServiceAccountToken": true,
        // Unprivileged: a non-root user whose extra group may read the log files.
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "supplementalGroups": [LOG_READER_GROUP],
            "fsGroup": RUN_AS_USER,
            "seccompProfile": { "type": "RuntimeDefault" },
        },
        "terminationGracePeriodSeconds": 30,
        "initContainers": [{
            // Root, but with CAP_CHOWN alone and only the checkpoint directory mounted.
            "name": "checkpoint-owner",
            "image": CHOWN_IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "command": ["chown", format!("{RUN_AS_USER}:{RUN_AS_USER}"), checkpoint_dir],
            "securityContext": {
                "runAsNonRoot": false,
                "runAsUser": 0,
                "runAsGroup": 0,
                "allowPrivilegeEscalation": false,
                "privileged": false,
                "readOnlyRootFilesystem": true,
                "capabilities": { "drop": ["ALL"], "add": ["CHOWN"] },
            },
            "resources": { "requests": { "cpu": "10m", "memory": "16Mi" }, "limits": { "memory": "32Mi" } },
            "volumeMounts": [{ "name": "checkpoints", "mountPath": checkpoint_dir }],
        }],
        "containers": [{
            "name": "shipper",
            "image": format!("{}:{}", settings.image, settings.version),
            "imagePullPolicy": "IfNotPresent",
            "command": ["bitesize-shipper"],
            "args": ["run", "--config", format!("{CONFIG_DIR}/{CONFIG_FILE}")],
            "env": [
                { "name": "NODE_NAME", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } },
                { "name": "BITESIZE_LOG", "value": LOG_LEVEL },
            ],
            "ports": [{ "name": "metrics", "containerPort": shipper.port, "protocol": "TCP" }],
            "livenessProbe": {
                "httpGet": { "path": "/healthz", "port": "metrics" },
                "initialDelaySeconds": 10,
                "periodSeconds": 10,
                "timeoutSeconds": 3,
                "failureThreshold": 6,
            },
            "readinessProbe": {
                "httpGet": { "path": "/readyz", "port": "metrics" },
                "periodSeconds": 5,
                "timeoutSeconds": 3,
                "failureThreshold": 3,
            },
            "resources": settings.resources,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "privileged": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "capabilities": { "drop": ["ALL"] },
            },
            "volumeMounts": [
                { "name": "varlog", "mountPath": "/var/log", "readOnly": true },
                { "name": "varlogpods", "mountPath": "/var/log/pods", "readOnly": true },
                { "name": "checkpoints", "mountPath": checkpoint_dir },
                { "name": "config", "mountPath": CONFIG_DIR, "readOnly": true },
                { "name": "tmp", "mountPath": "/tmp" },
            ],
        }],
        "volumes": [
            { "name": "varlog", "hostPath": { "path": "/var/log", "type": "Directory" } },
            { "name": "varlogpods", "hostPath": { "path": "/var/log/pods", "type": "DirectoryOrCreate" } },
            // Survives pod replacement (rolling updates): no line shipped twice or lost.
            { "name": "checkpoints", "hostPath": { "path": checkpoint_dir, "type": "DirectoryOrCreate" } },
            { "name": "config", "configMap": { "name": NAME } },
            { "name": "tmp", "emptyDir": { "sizeLimit": "64Mi" } },
        ],
        "tolerations": settings.tolerations,
    })
}

/// Whether `live` holds everything `desired` sets (maps: every desired key, recursively;
/// lists: same length, element by element; scalars: equal). Fields the API server or other
/// managers added are not drift.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => desired
            .iter()
            .all(|(k, d)| live.get(k).is_some_and(|l| contains(l, d))),
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains(l, d))
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        (live, desired) => live == desired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Manifests {
        Manifests::render(
            &FleetSettings::defaults("kafka:9092", "logs.{namespace}"),
            "bitesize",
        )
    }

    /// The DaemonSet is unprivileged exactly as issue 7 says.
    #[test]
    fn daemon_set_is_unprivileged() {
        let ds = rendered().daemon_set;
        let pod = &ds["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_ne!(pod["securityContext"]["runAsUser"], 0);
        assert_eq!(
            pod["securityContext"]["supplementalGroups"],
            json!([LOG_READER_GROUP])
        );
        assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());
        let sc = &container["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["privileged"], false);
        assert_eq!(sc["capabilities"], json!({ "drop": ["ALL"] }));
        assert!(sc["capabilities"].get("add").is_none());
        let mounts = container["volumeMounts"].as_array().unwrap();
        let mount = |path: &str| {
            mounts
                .iter()
                .find(|m| m["mountPath"] == path)
                .unwrap()
                .clone()
        };
        assert_eq!(mount("/var/log")["readOnly"], true);
        assert_eq!(mount("/var/log/pods")["readOnly"], true);
        assert_eq!(mount(CONFIG_DIR)["readOnly"], true);
        let checkpoints = mount("/var/lib/bitesize-shipper");
        assert!(
            checkpoints.get("readOnly").is_none(),
            "checkpoints are writable"
        );
        let volumes = pod["volumes"].as_array().unwrap();
        let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap().clone();
        assert_eq!(volume("varlog")["hostPath"]["path"], "/var/log");
        assert_eq!(volume("varlogpods")["hostPath"]["path"], "/var/log/pods");
        assert_eq!(
            volume("checkpoints")["hostPath"]["path"],
            "/var/lib/bitesize-shipper"
        );
        // Writable: the checkpoint directory and an emptyDir for /tmp, nothing else.
        for m in mounts.iter().filter(|m| m["readOnly"] != true) {
            assert!(m["name"] == "checkpoints" || m["name"] == "tmp", "{m}");
        }
        assert_eq!(volume("tmp")["emptyDir"]["sizeLimit"], "64Mi");
        // The only root process: the init container, with CAP_CHOWN alone.
        let init = &pod["initContainers"][0];
        assert_eq!(
            init["securityContext"]["capabilities"],
            json!({ "drop": ["ALL"], "add": ["CHOWN"] })
        );
        assert_eq!(init["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(
            init["volumeMounts"],
            json!([{ "name": "checkpoints", "mountPath": "/var/lib/bitesize-shipper" }])
        );
        assert_eq!(pod["tolerations"], json!([{ "operator": "Exists" }]));
        assert_eq!(
            container["env"][0],
            json!({ "name": "NODE_NAME", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } })
        );
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["ports"][0]["containerPort"], 9102);
        assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    }

    #[test]
    fn cluster_role_reads_pods_and_namespaces_only() {
        let role = rendered().cluster_role;
        assert_eq!(
            role["rules"],
            json!([{ "apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"] }])
        );
    }

    #[test]
    fn contains_ignores_added_fields_but_not_changed_ones() {
        let desired = json!({ "a": { "b": [1, { "c": "x" }] } });
        assert!(contains(
            &json!({ "a": { "b": [1.0, { "c": "x", "d": 1 }], "e": 2 }, "f": 3 }),
            &desired
        ));
        assert!(!contains(
            &json!({ "a": { "b": [1, { "c": "y" }] } }),
            &desired
        ));
        assert!(!contains(&json!({ "a": { "b": [1] } }), &desired));
        assert!(!contains(&json!({}), &desired));
    }
}
