//! The Helm chart (`charts/bitesize`): `helm lint --strict`, `helm template` with the
//! default values and with every file of `charts/bitesize/ci/`, the output validated by
//! `kubernetes-validate --strict` against the Kubernetes 1.28 and 1.33 schemas, the security
//! properties of the rendered shipper DaemonSet and server Deployment, the schema's errors,
//! and the rendered configuration files loaded by the real `bitesize` and
//! `bitesize-shipper` binaries. Needs helm and kubernetes-validate: `./scripts/test`
//! installs both and sets `BITESIZE_HELM_BIN` and `BITESIZE_KUBERNETES_VALIDATE_BIN`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::Deserialize;
use serde_yaml::Value;

/// The Kubernetes versions whose schemas the rendered manifests must satisfy (the oldest
/// the chart supports and a current one; kubernetes-validate ships both offline).
const KUBERNETES_VERSIONS: [&str; 2] = ["1.28.0", "1.33.0"];

fn tool(variable: &str, what: &str) -> PathBuf {
    let path = std::env::var(variable).unwrap_or_else(|_| {
        panic!("this test needs {what}: run ./scripts/test (it installs it), or set {variable}")
    });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{variable}={} does not exist: run ./scripts/test",
        path.display()
    );
    path
}

fn helm_bin() -> PathBuf {
    tool("BITESIZE_HELM_BIN", "helm v3")
}

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/bitesize")
}

/// The values files the chart is checked with: none (the defaults) and each `ci/*.yaml`.
fn values_cases() -> Vec<Option<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("charts/bitesize/ci")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("full-values.yaml")),
        "ci/full-values.yaml is missing"
    );
    std::iter::once(None)
        .chain(files.into_iter().map(Some))
        .collect()
}

fn helm(args: &[&str]) -> Output {
    Command::new(helm_bin())
        .args(args)
        .output()
        .expect("run helm")
}

/// `helm template` of the chart in namespace `logs`; `Err(stderr)` when helm refuses.
fn try_render(values: Option<&Path>, sets: &[&str]) -> Result<String, String> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        "demo",
        chart.to_str().unwrap(),
        "--namespace",
        "logs",
    ];
    if let Some(file) = values {
        args.extend(["--values", file.to_str().unwrap()]);
    }
    for set in sets {
        args.extend(["--set", set]);
    }
    let output = helm(&args);
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn render(values: Option<&Path>, sets: &[&str]) -> String {
    try_render(values, sets)
        .unwrap_or_else(|e| panic!("helm template {values:?} {sets:?} failed: {e}"))
}

/// The manifests of a rendering, one YAML document each.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("helm renders YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn get<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(docs, kind, name).unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

#[test]
fn lint_strict_passes_with_default_and_ci_values() {
    let chart = chart_dir();
    for values in values_cases() {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        if let Some(file) = &values {
            args.extend(["--values", file.to_str().unwrap()]);
        }
        let output = helm(&args);
        assert!(
            output.status.success(),
            "helm lint --strict {values:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn rendered_manifests_validate_against_kubernetes_schemas() {
    let validate = tool(
        "BITESIZE_KUBERNETES_VALIDATE_BIN",
        "kubernetes-validate (PyPI)",
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, values) in values_cases().iter().enumerate() {
        let yaml = render(values.as_deref(), &[]);
        let count = documents(&yaml).len();
        assert!(count >= 8, "{values:?}: only {count} manifests rendered");
        let file = dir.path().join(format!("rendered-{i}.yaml"));
        std::fs::write(&file, &yaml).unwrap();
        for version in KUBERNETES_VERSIONS {
            let output = Command::new(&validate)
                .args(["--strict", "--kubernetes-version", version])
                .arg(&file)
                .output()
                .expect("run kubernetes-validate");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{values:?} against Kubernetes {version}:\n{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            // Every manifest was checked against a schema, none skipped as unknown.
            let passed = stdout.matches(" passed for resource ").count();
            assert_eq!(
                passed, count,
                "{values:?} against Kubernetes {version}: {passed} of {count} manifests validated:\n{stdout}"
            );
        }
    }
}

/// Checks the pod of the shipper DaemonSet: unprivileged, read-only host logs, a writable
/// checkpoint directory, on every node, probes on the port the shipper listens on.
fn assert_shipper_unprivileged(docs: &[Value], case: &str) {
    let daemonset = get(docs, "DaemonSet", "bitesize-shipper");
    let spec = &daemonset["spec"];
    assert_eq!(spec["updateStrategy"]["type"], "RollingUpdate", "{case}");
    assert_eq!(
        spec["selector"]["matchLabels"]["app.kubernetes.io/name"], "bitesize-shipper",
        "{case}: the fleet manager selects by this label"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "bitesize-shipper", "{case}");
    for host_namespace in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(
            pod[host_namespace].is_null(),
            "{case}: {host_namespace} set"
        );
    }
    let security = &pod["securityContext"];
    assert_eq!(security["runAsNonRoot"], true, "{case}");
    assert!(security["runAsUser"].as_u64().unwrap() > 0, "{case}");
    assert!(security["runAsGroup"].as_u64().unwrap() > 0, "{case}");
    assert_eq!(
        security["supplementalGroups"],
        serde_yaml::from_str::<Value>("[0]").unwrap(),
        "{case}: the log-reading group"
    );
    assert_eq!(
        security["seccompProfile"]["type"], "RuntimeDefault",
        "{case}"
    );

    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1, "{case}");
    let shipper = &containers[0];
    assert_eq!(
        strings(&shipper["args"]),
        ["run", "--config", "/etc/bitesize-shipper/shipper.yaml"],
        "{case}"
    );
    let container_security = &shipper["securityContext"];
    assert_eq!(
        container_security["allowPrivilegeEscalation"], false,
        "{case}"
    );
    assert_eq!(container_security["readOnlyRootFilesystem"], true, "{case}");
    assert_eq!(container_security["runAsNonRoot"], true, "{case}");
    assert_ne!(container_security["privileged"], true, "{case}");
    assert_eq!(
        strings(&container_security["capabilities"]["drop"]),
        ["ALL"],
        "{case}"
    );
    assert!(
        container_security["capabilities"]["add"].is_null(),
        "{case}: the shipper adds no capability"
    );

    // NODE_NAME from the downward API.
    let env = shipper["env"].as_sequence().unwrap();
    let node_name = env.iter().find(|e| e["name"] == "NODE_NAME").unwrap();
    assert_eq!(
        node_name["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName",
        "{case}"
    );

    // Host paths: the logs read-only, the checkpoints writable, nothing else of the node.
    let volumes = pod["volumes"].as_sequence().unwrap();
    let host_paths: HashMap<&str, &str> = volumes
        .iter()
        .filter(|v| !v["hostPath"].is_null())
        .map(|v| {
            (
                text(&v["name"], "volume name"),
                text(&v["hostPath"]["path"], "hostPath"),
            )
        })
        .collect();
    let mounts = shipper["volumeMounts"].as_sequence().unwrap();
    for (volume, host_path) in &host_paths {
        let mount = mounts
            .iter()
            .find(|m| m["name"] == *volume)
            .unwrap_or_else(|| panic!("{case}: hostPath {host_path} not mounted"));
        let read_only = mount["readOnly"] == true;
        match *host_path {
            "/var/log" | "/var/log/pods" => assert!(read_only, "{case}: {host_path} writable"),
            "/var/lib/bitesize-shipper" => assert!(!read_only, "{case}: checkpoints read-only"),
            other => panic!("{case}: unexpected hostPath {other}"),
        }
    }
    let mut paths: Vec<&str> = host_paths.values().copied().collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/var/lib/bitesize-shipper", "/var/log", "/var/log/pods"],
        "{case}"
    );

    // The init container that hands the checkpoint directory to the shipper's user holds
    // CAP_CHOWN and nothing else.
    for init in pod["initContainers"].as_sequence().into_iter().flatten() {
        let caps = &init["securityContext"]["capabilities"];
        assert_eq!(strings(&caps["drop"]), ["ALL"], "{case}");
        assert_eq!(strings(&caps["add"]), ["CHOWN"], "{case}");
        assert_eq!(init["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(init["securityContext"]["readOnlyRootFilesystem"], true);
        for mount in init["volumeMounts"].as_sequence().unwrap() {
            assert_eq!(
                mount["name"], "checkpoints",
                "{case}: init mounts only checkpoints"
            );
        }
    }

    // Every node, tainted ones too.
    let tolerations = pod["tolerations"].as_sequence().unwrap();
    assert!(
        tolerations
            .iter()
            .any(|t| t["operator"] == "Exists" && t["key"].is_null() && t["effect"].is_null()),
        "{case}: no toleration for every taint: {tolerations:?}"
    );

    // Probes on the port the shipper's config makes it listen on.
    let config = get(docs, "ConfigMap", "bitesize-shipper");
    let config: Value =
        serde_yaml::from_str(text(&config["data"]["shipper.yaml"], "shipper.yaml")).unwrap();
    let listen = text(&config["listen"], "listen");
    let port = &shipper["ports"][0];
    assert_eq!(port["name"], "metrics", "{case}");
    assert_eq!(
        listen,
        format!("0.0.0.0:{}", port["containerPort"].as_u64().unwrap()),
        "{case}"
    );
    assert_eq!(shipper["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(shipper["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(shipper["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(shipper["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(
        config["checkpoint_dir"], "/var/lib/bitesize-shipper",
        "{case}"
    );
    assert_eq!(config["kubernetes"]["enabled"], true, "{case}");

    // Its RBAC: pods and namespaces, get/list/watch, nothing more.
    let role = get(docs, "ClusterRole", "bitesize-shipper");
    let expected: Value = serde_yaml::from_str(
        "- apiGroups: ['']\n  resources: [pods, namespaces]\n  verbs: [get, list, watch]\n",
    )
    .unwrap();
    assert_eq!(role["rules"], expected, "{case}");
    let binding = get(docs, "ClusterRoleBinding", "bitesize-shipper");
    assert_eq!(binding["roleRef"]["name"], "bitesize-shipper");
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(binding["subjects"][0]["name"], "bitesize-shipper");
    assert_eq!(binding["subjects"][0]["namespace"], "logs");
    get(docs, "ServiceAccount", "bitesize-shipper");
}

/// Checks the server's pod: non-root, read-only root file system, no capabilities, its data
/// directory on the PersistentVolumeClaim, probes on the served port.
fn assert_server_locked_down(docs: &[Value], case: &str) {
    let deployment = get(docs, "Deployment", "demo-bitesize");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1, "{case}: one writer of the index");
    assert_eq!(spec["strategy"]["type"], "Recreate", "{case}");
    let pod = &spec["template"]["spec"];
    let security = &pod["securityContext"];
    assert_eq!(security["runAsNonRoot"], true, "{case}");
    assert!(security["runAsUser"].as_u64().unwrap() > 0, "{case}");
    assert!(security["fsGroup"].as_u64().unwrap() > 0, "{case}");
    let server = &pod["containers"][0];
    let container_security = &server["securityContext"];
    assert_eq!(
        container_security["allowPrivilegeEscalation"], false,
        "{case}"
    );
    assert_eq!(container_security["readOnlyRootFilesystem"], true, "{case}");
    assert_eq!(
        strings(&container_security["capabilities"]["drop"]),
        ["ALL"],
        "{case}"
    );
    assert!(
        container_security["capabilities"]["add"].is_null(),
        "{case}"
    );
    for volume in pod["volumes"].as_sequence().unwrap() {
        assert!(
            volume["hostPath"].is_null(),
            "{case}: the server mounts no host path"
        );
    }
    let config = get(docs, "ConfigMap", "demo-bitesize");
    let config = Figment::from(Toml::string(text(
        &config["data"]["bitesize.toml"],
        "bitesize.toml",
    )));
    let data_dir: String = config.extract_inner("data_dir").unwrap();
    let data_mount = server["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == data_dir.as_str())
        .unwrap_or_else(|| panic!("{case}: data_dir {data_dir} is not a mounted volume"));
    let data_volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == data_mount["name"])
        .unwrap();
    if deployment_has_persistence(docs) {
        let claim = text(
            &data_volume["persistentVolumeClaim"]["claimName"],
            "claimName",
        );
        get(docs, "PersistentVolumeClaim", claim);
    }
    let listen: String = config.extract_inner("listen").unwrap();
    let port = server["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(listen, format!("0.0.0.0:{port}"), "{case}");
    assert_eq!(server["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(server["livenessProbe"]["httpGet"]["path"], "/healthz");
    let service = get(docs, "Service", "demo-bitesize");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(server["ports"][0]["name"], "http");
    // No secret value in a ConfigMap or in the pod spec.
    let configmaps = serde_yaml::to_string(&of_kind(docs, "ConfigMap")).unwrap();
    let pod_spec = serde_yaml::to_string(pod).unwrap();
    for secret in [
        "sasl-secret-from-values",
        "oidc-secret-from-values",
        "postgres://bitesize@",
    ] {
        assert!(
            !configmaps.contains(secret),
            "{case}: {secret} in a ConfigMap"
        );
        assert!(
            !pod_spec.contains(secret),
            "{case}: {secret} in the pod spec"
        );
    }
}

fn deployment_has_persistence(docs: &[Value]) -> bool {
    !of_kind(docs, "PersistentVolumeClaim").is_empty()
}

#[test]
fn shipper_daemonset_and_server_are_unprivileged() {
    let full = chart_dir().join("ci/full-values.yaml");
    for (case, values) in [("defaults", None), ("full values", Some(full.as_path()))] {
        let docs = documents(&render(values, &[]));
        assert_shipper_unprivileged(&docs, case);
        assert_server_locked_down(&docs, case);
        // The server reaches the Kubernetes API only when it runs the fleet.
        let pod = &get(&docs, "Deployment", "demo-bitesize")["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "{case}");
        assert!(
            find(&docs, "Role", "demo-bitesize-fleet").is_none(),
            "{case}"
        );
    }
}

#[test]
fn managed_by_server_renders_no_daemonset_and_grants_the_fleet_manager() {
    let docs = documents(&render(None, &["shipper.managedBy=server"]));
    assert!(
        of_kind(&docs, "DaemonSet").is_empty(),
        "the fleet manager applies the DaemonSet"
    );
    for kind in [
        "ConfigMap",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    ] {
        assert!(
            find(&docs, kind, "bitesize-shipper").is_none(),
            "{kind} bitesize-shipper rendered though the server manages it"
        );
    }
    // The server's `[fleet]`: this cluster, the shipper objects in the release namespace.
    let config = get(&docs, "ConfigMap", "demo-bitesize");
    let config = Figment::from(Toml::string(text(
        &config["data"]["bitesize.toml"],
        "bitesize.toml",
    )));
    assert!(config.extract_inner::<bool>("fleet.in_cluster").unwrap());
    assert_eq!(
        config.extract_inner::<String>("fleet.namespace").unwrap(),
        "logs"
    );
    let pod = &get(&docs, "Deployment", "demo-bitesize")["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["serviceAccountName"], "demo-bitesize");

    // The namespaced rights name the shipper's objects; the cluster-wide ones too, plus the
    // reads the shipper's ClusterRole grants.
    let role = get(&docs, "Role", "demo-bitesize-fleet");
    let named: Vec<&Value> = role["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|r| strings(&r["verbs"]).contains(&"patch"))
        .collect();
    let mut kinds: Vec<&str> = named
        .iter()
        .flat_map(|r| strings(&r["resources"]))
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["configmaps", "daemonsets", "serviceaccounts"]);
    for rule in &named {
        assert_eq!(strings(&rule["resourceNames"]), ["bitesize-shipper"]);
    }
    assert!(role["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|r| strings(&r["resources"]) == ["pods"]
            && strings(&r["verbs"]) == ["get", "list", "watch"]));
    let cluster_role = get(&docs, "ClusterRole", "demo-bitesize-logs-fleet");
    for rule in cluster_role["rules"].as_sequence().unwrap() {
        let verbs = strings(&rule["verbs"]);
        if verbs.contains(&"patch") {
            assert_eq!(strings(&rule["resourceNames"]), ["bitesize-shipper"]);
            assert_eq!(
                strings(&rule["resources"]),
                ["clusterroles", "clusterrolebindings"]
            );
        } else {
            assert_eq!(verbs, ["get", "list", "watch"], "read-only otherwise");
        }
        assert!(!verbs.contains(&"*") && !verbs.contains(&"escalate") && !verbs.contains(&"bind"));
    }
    for binding in ["RoleBinding", "ClusterRoleBinding"] {
        let binding = get(
            &docs,
            binding,
            if binding == "RoleBinding" {
                "demo-bitesize-fleet"
            } else {
                "demo-bitesize-logs-fleet"
            },
        );
        assert_eq!(binding["subjects"][0]["name"], "demo-bitesize");
        assert_eq!(binding["subjects"][0]["namespace"], "logs");
    }
}

/// The shippers reload `redact`, `transforms`, `include` and `exclude` themselves: changing
/// those keeps the pod template (no rollout); changing another key rolls the DaemonSet.
#[test]
fn only_config_changes_the_shipper_cannot_reload_roll_the_daemonset() {
    let annotation = |sets: &[&str]| {
        let docs = documents(&render(None, sets));
        let daemonset = get(&docs, "DaemonSet", "bitesize-shipper");
        text(
            &daemonset["spec"]["template"]["metadata"]["annotations"]["checksum/restart-config"],
            "checksum/restart-config",
        )
        .to_owned()
    };
    let base = annotation(&[]);
    for live in [
        "shipper.exclude[0]=/var/log/containers/*_kube-system_*.log",
        "shipper.include[0]=/var/log/pods/*/*/*.log",
        "shipper.extraConfig.redact.presets[0]=emails",
    ] {
        assert_eq!(annotation(&[live]), base, "{live} rolled the shippers");
    }
    for restart in [
        "shipper.compression=lz4",
        "kafka.brokers=other:9092",
        "shipper.extraConfig.batch_records=10",
    ] {
        assert_ne!(
            annotation(&[restart]),
            base,
            "{restart} did not roll the shippers"
        );
    }
}

#[test]
fn bad_values_are_rejected_naming_the_key() {
    for (set, key) in [
        ("shipper.managedBy=fleet", "shipper.managedBy"),
        ("server.writerMemoryMb=3", "server.writerMemoryMb"),
        ("kafka.topicTemplate=logs", "kafka.topicTemplate"),
        ("shipper.compression=brotli", "shipper.compression"),
        ("server.replicas=3", "replicas"),
        ("shipper.tolerance=1", "tolerance"),
        // Checked by the templates, not the schema:
        ("server.localAccounts=false", "server.localAccounts"),
        ("kafka.sasl.enabled=true", "kafka.sasl.username"),
        (
            "shipper.name=logs-agent,shipper.managedBy=server",
            "shipper.name",
        ),
    ] {
        let error = try_render(None, &[set]).expect_err(set);
        assert!(error.contains(key), "--set {set}: {error}");
    }
    let error = try_render(None, &["server.oidc[0].name=corp"]).expect_err("oidc without issuer");
    assert!(error.contains("issuerUrl"), "{error}");
}

/// Copies `dir` (a chart) to `to`, recursively.
fn copy_dir(dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `NOTES.txt` as `helm install` prints it. `helm template` leaves the notes out, so a copy
/// of the chart wraps them in a manifest.
fn render_notes(values: Option<&Path>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("bitesize");
    copy_dir(&chart_dir(), &chart);
    let notes = std::fs::read_to_string(chart.join("templates/NOTES.txt")).unwrap();
    std::fs::write(
        chart.join("templates/_notes_preview.tpl"),
        format!("{{{{- define \"notes-preview\" -}}}}\n{notes}{{{{- end }}}}\n"),
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/notes-preview.yaml"),
        "notes: {{ include \"notes-preview\" . | toJson }}\n",
    )
    .unwrap();
    let mut args = vec![
        "template",
        "demo",
        chart.to_str().unwrap(),
        "--namespace",
        "logs",
        "--show-only",
        "templates/notes-preview.yaml",
    ];
    if let Some(file) = values {
        args.extend(["--values", file.to_str().unwrap()]);
    }
    let output = helm(&args);
    assert!(
        output.status.success(),
        "NOTES.txt with {values:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value = serde_yaml::from_slice(&output.stdout).unwrap();
    text(&doc["notes"], "notes").to_owned()
}

#[test]
fn notes_say_how_to_reach_the_dashboard_and_sign_in() {
    let notes = render_notes(None);
    assert!(
        notes.contains("kubectl -n logs port-forward service/demo-bitesize 8080:8080"),
        "{notes}"
    );
    assert!(notes.contains("http://127.0.0.1:8080/search"), "{notes}");
    assert!(notes.contains("user add admin --password-stdin"), "{notes}");
    assert!(
        notes.contains("binding add --user admin --role admin"),
        "{notes}"
    );

    let notes = render_notes(Some(&chart_dir().join("ci/full-values.yaml")));
    assert!(notes.contains("https://logs.example.com/search"), "{notes}");
    assert!(
        notes.contains("https://logs.example.com/auth/oidc/corp/callback"),
        "{notes}"
    );
    assert!(notes.contains("binding add --group"), "{notes}");
    assert!(
        !notes.contains("--password-stdin"),
        "local accounts are off: {notes}"
    );
}

/// `$(NAME)` references in an environment value, substituted as the kubelet does.
fn substitute(value: &str, variables: &HashMap<String, String>) -> String {
    let mut out = value.to_owned();
    for (name, val) in variables {
        out = out.replace(&format!("$({name})"), val);
    }
    assert!(!out.contains("$("), "unresolved reference in {value}");
    out
}

/// A container's environment with Secret references resolved from `secrets` (`name/key`).
fn container_env(container: &Value, secrets: &HashMap<&str, &str>) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for var in container["env"].as_sequence().unwrap() {
        let name = text(&var["name"], "env name").to_owned();
        let value = if let Some(value) = var["value"].as_str() {
            substitute(value, &env)
        } else if !var["valueFrom"]["secretKeyRef"].is_null() {
            let secret = &var["valueFrom"]["secretKeyRef"];
            let reference = format!(
                "{}/{}",
                text(&secret["name"], "secret"),
                text(&secret["key"], "key")
            );
            secrets
                .get(reference.as_str())
                .unwrap_or_else(|| panic!("the test knows no Secret value {reference}"))
                .to_string()
        } else {
            continue; // downward API: set by the test
        };
        env.insert(name, value);
    }
    env
}

/// The rendered server configuration and environment load in the real `bitesize` (its
/// `migrate` reads, validates and opens the database), and the rendered shipper
/// configuration in the real `bitesize-shipper` (`check` over a kubelet-named log file).
#[test]
fn rendered_configs_load_in_the_real_binaries() {
    let full = chart_dir().join("ci/full-values.yaml");
    let cases: [(&str, Option<&Path>, &[&str]); 3] = [
        ("defaults", None, &[]),
        ("full values", Some(full.as_path()), &[]),
        ("managed by server", None, &["shipper.managedBy=server"]),
    ];
    for (case, values, sets) in cases {
        let dir = tempfile::tempdir().unwrap();
        let docs = documents(&render(values, sets));
        // Files the pods get from Secrets, at paths under the temporary directory.
        let mounted = dir.path().join("etc");
        for file in [
            "kafka-tls/ca.crt",
            "kafka-tls/tls.crt",
            "kafka-tls/tls.key",
            "kafka-sasl/password",
        ] {
            let path = mounted.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "test file\n").unwrap();
        }
        let relocate =
            |text: &str| text.replace("/etc/bitesize/", &format!("{}/", mounted.display()));
        let database = format!("sqlite://{}/chart.db?mode=rwc", dir.path().display());
        let secrets: HashMap<&str, &str> = [
            ("demo-bitesize/database-url", database.as_str()),
            ("demo-bitesize/oidc-corp-client-secret", "corp-secret"),
            ("partners-sso/client-secret", "partners-secret"),
            ("demo-bitesize/kafka-sasl-password", "sasl-password"),
            (
                "kafka-bootstrap/bootstrap",
                "kafka-0.example:9093,kafka-1.example:9093",
            ),
        ]
        .into();

        let server_config = get(&docs, "ConfigMap", "demo-bitesize");
        let config_file = dir.path().join("bitesize.toml");
        std::fs::write(
            &config_file,
            relocate(text(&server_config["data"]["bitesize.toml"], "toml")),
        )
        .unwrap();
        let deployment = get(&docs, "Deployment", "demo-bitesize");
        let server = &deployment["spec"]["template"]["spec"]["containers"][0];
        let mut env = container_env(server, &secrets);
        if case == "full values" {
            assert!(
                env["BITESIZE_OIDC"].contains("client_secret=\"corp-secret\""),
                "{env:?}"
            );
            assert!(env.contains_key("BITESIZE_DATABASE_URL"));
        }
        env.insert(
            "BITESIZE_DATA_DIR".into(),
            dir.path().join("data").display().to_string(),
        );
        let args = strings(&server["args"]);
        assert_eq!(args[0], "serve", "{case}");
        let output = common::cli(
            &env,
            &["--config", config_file.to_str().unwrap(), "migrate"],
            None,
        );
        assert!(
            output.contains("database is up to date"),
            "{case}: {output}"
        );

        if case == "managed by server" {
            // `[fleet]` is in the file `migrate` just loaded; the shipper objects are the
            // fleet manager's.
            assert!(find(&docs, "ConfigMap", "bitesize-shipper").is_none());
            continue;
        }
        let shipper_config = get(&docs, "ConfigMap", "bitesize-shipper");
        let config_file = dir.path().join("shipper.yaml");
        std::fs::write(
            &config_file,
            text(&shipper_config["data"]["shipper.yaml"], "yaml"),
        )
        .unwrap();
        let daemonset = get(&docs, "DaemonSet", "bitesize-shipper");
        let shipper = &daemonset["spec"]["template"]["spec"]["containers"][0];
        let mut env = container_env(shipper, &secrets);
        env.insert("NODE_NAME".into(), "node-7".into());
        // In the pod the shipper reaches the API with its service account; here it is given
        // a kubeconfig whose server refuses connections, so `check` falls back to the
        // file-name metadata after its 5 s wait.
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
                 clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{}'}}}}]\n\
                 users: [{{name: u, user: {{}}}}]\n\
                 contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\n",
                common::free_port()
            ),
        )
        .unwrap();
        env.insert(
            "BITESIZE_KUBERNETES__KUBECONFIG".into(),
            kubeconfig.display().to_string(),
        );
        let logs = common::LogDir::new(dir.path());
        let file = logs.file("web-1", "shop", "app");
        logs.append(&file, &[common::cri("stdout", "F", "GET /cart 200")]);
        let output = Command::new(shipper_bin())
            .args(["check", "--config", config_file.to_str().unwrap()])
            .arg(&file)
            .env_clear()
            .envs(&env)
            .output()
            .expect("run bitesize-shipper");
        assert!(
            output.status.success(),
            "{case}: bitesize-shipper check with the chart's config: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let record: serde_json::Value =
            serde_json::from_slice(output.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(record["kubernetes"]["host"], "node-7", "{case}: {record}");
        assert_eq!(record["kubernetes"]["namespace_name"], "shop", "{case}");
        if case == "full values" {
            assert_eq!(record["cluster"], "prod-eu-1", "{record}");
        }
    }
}

fn shipper_bin() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_bitesize")).with_file_name("bitesize-shipper");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (./scripts/test does)",
        path.display()
    );
    path
}

/// The fields where the chart's shipper objects and the fleet manager's differ on purpose,
/// as (kind, JSON pointer, reason). Everything else of the five objects must be equal.
const BY_DESIGN: &[(&str, &str, &str)] = &[
    (
        "*",
        "/metadata/labels",
        "Helm adds its own labels (helm.sh/chart, instance, version, managed-by Helm) and the \
         fleet says managed-by bitesize; the labels that matter are compared one by one",
    ),
    (
        "ConfigMap",
        "/metadata/annotations",
        "the fleet's config version; the chart has no config versions (a Helm upgrade is one)",
    ),
    (
        "ConfigMap",
        "/data/config-version",
        "the file the shipper reports its config version from: fleet only (a chart-managed \
         shipper reports 0)",
    ),
    (
        "DaemonSet",
        "/spec/template/metadata/labels",
        "as /metadata/labels: compared one by one below",
    ),
    (
        "DaemonSet",
        "/spec/template/metadata/annotations",
        "the chart rolls the pods on a checksum of the keys the shipper cannot reload; the \
         fleet annotates the config and shipper versions of the last rollout",
    ),
];

/// The labels both sides must set alike: the selector (`name`), and what dashboards and
/// `kubectl -l` filter on.
const LABELS_THAT_MATTER: [&str; 3] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
];

fn remove_pointer(value: &mut serde_json::Value, pointer: &str) -> bool {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    value
        .pointer_mut(parent)
        .and_then(serde_json::Value::as_object_mut)
        .is_some_and(|map| map.remove(key).is_some())
}

/// The chart with `shipper.managedBy=chart` and the fleet manager's `Manifests::render`, on
/// the same image, namespace and shipper config, render the same shipper objects but for
/// the differences listed in [`BY_DESIGN`].
#[test]
fn chart_shipper_manifests_agree_with_the_fleet_manager() {
    use bitesize_server::fleet::render::{self, Manifests};
    use bitesize_server::fleet::settings::FleetSettings;
    use serde_json::json;

    let version = "9.8.7";
    let tag = format!("shipper.image.tag={version}");
    let docs = documents(&render(None, &["shipper.managedBy=chart", &tag]));
    let chart_config = get(&docs, "ConfigMap", render::NAME);
    // The same config as the chart's: the fleet takes it as its desired state.
    let mut settings = FleetSettings::defaults("unused:9092", "unused.{namespace}");
    settings.config = text(&chart_config["data"][render::CONFIG_FILE], "shipper.yaml").to_owned();
    settings.version = version.to_owned();
    assert_eq!(
        settings.image, "ghcr.io/bitesize/bitesize-shipper",
        "the chart's default shipper.image.repository is the fleet's default image"
    );
    let fleet = Manifests::render(&settings, "logs");

    for (kind, fleet_object) in fleet.in_order() {
        let chart_object = get(&docs, kind, render::NAME);
        let mut chart_object = serde_json::to_value(chart_object).expect("YAML as JSON");
        let mut fleet_object = fleet_object.clone();

        let labels = |object: &serde_json::Value, pointer: &str| {
            let labels = object.pointer(pointer).cloned().unwrap_or(json!({}));
            LABELS_THAT_MATTER
                .map(|label| (label, labels[label].clone()))
                .to_vec()
        };
        let mut label_pointers = vec!["/metadata/labels"];
        if kind == "DaemonSet" {
            label_pointers.push("/spec/template/metadata/labels");
        }
        for pointer in label_pointers {
            let chart_labels = labels(&chart_object, pointer);
            assert!(
                chart_labels.iter().all(|(_, v)| v.is_string()),
                "{kind} {pointer}: {chart_labels:?}"
            );
            assert_eq!(
                chart_labels,
                labels(&fleet_object, pointer),
                "{kind} {pointer}"
            );
        }

        for (on, pointer, reason) in BY_DESIGN {
            if *on != "*" && *on != kind {
                continue;
            }
            // A listed difference that no longer exists must leave the list.
            let in_chart = remove_pointer(&mut chart_object, pointer);
            let in_fleet = remove_pointer(&mut fleet_object, pointer);
            assert!(
                in_chart || in_fleet,
                "{kind} {pointer} is listed as a difference ({reason}) but neither side has it"
            );
        }
        assert_eq!(
            chart_object,
            fleet_object,
            "{kind}: the chart and the fleet manager disagree:\nchart: {}\nfleet: {}",
            serde_json::to_string_pretty(&chart_object).unwrap(),
            serde_json::to_string_pretty(&fleet_object).unwrap(),
        );
    }

    // What the comparison above covers, spelled out (so that a change making both sides
    // wrong alike is caught too).
    let pod = &fleet.daemon_set["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        fleet.cluster_role["rules"],
        json!([{ "apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"] }])
    );
    assert_eq!(pod["serviceAccountName"], render::NAME);
    assert_eq!(
        fleet.daemon_set["spec"]["selector"]["matchLabels"],
        json!({ "app.kubernetes.io/name": render::NAME })
    );
    assert_eq!(
        render::pod_selector(),
        format!("app.kubernetes.io/name={}", render::NAME),
        "the fleet's status finds the chart's pods too"
    );
    assert_eq!(
        container["image"],
        format!("ghcr.io/bitesize/bitesize-shipper:{version}")
    );
    assert_eq!(
        container["env"][0],
        json!({ "name": "NODE_NAME", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } })
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["livenessProbe"]["httpGet"],
        json!({ "path": "/healthz", "port": "metrics" })
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"],
        json!({ "path": "/readyz", "port": "metrics" })
    );
    assert_eq!(pod["initContainers"][0]["name"], "checkpoint-owner");
    assert_eq!(
        fleet.daemon_set["spec"]["updateStrategy"]["type"],
        "RollingUpdate"
    );
}
