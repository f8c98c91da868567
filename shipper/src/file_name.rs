//! Metadata carried by a kubelet container log file name:
//! `<pod>_<namespace>_<container>-<64 hex container id>.log`.

use std::path::Path;

/// What the file name tells about the container that writes the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFile {
    pub pod: String,
    pub namespace: String,
    pub container: String,
    pub container_id: String,
}

impl ContainerFile {
    /// Parses a file name like `web-7d9c_shop_web-<64 hex>.log`; `None` when it is not one.
    pub fn parse(path: &Path) -> Option<ContainerFile> {
        let name = path.file_name()?.to_str()?;
        let stem = name.strip_suffix(".log")?;
        let mut parts = stem.split('_');
        let (pod, namespace, rest) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || pod.is_empty() {
            return None;
        }
        let (container, container_id) = rest.rsplit_once('-')?;
        let id_ok = container_id.len() == 64 && container_id.bytes().all(|b| b.is_ascii_hexdigit());
        if !id_ok || container.is_empty() {
            return None;
        }
        bitesize_record::validate_namespace(namespace).ok()?;
        Some(ContainerFile {
            pod: pod.to_owned(),
            namespace: namespace.to_owned(),
            container: container.to_owned(),
            container_id: container_id.to_owned(),
        })
    }
}

/// The pod uid in the directory the kubelet keeps a container's logs in, which the
/// `/var/log/containers` link points into: `/var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log`.
pub fn pod_uid_from_target(target: &Path, container: &ContainerFile) -> Option<String> {
    let pod_dir = target.parent()?.parent()?.file_name()?.to_str()?;
    let rest = pod_dir.strip_prefix(&format!("{}_{}_", container.namespace, container.pod))?;
    let is_uid = rest.len() == 36 && rest.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    is_uid.then(|| rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3a38a5c2e1f44b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e";

    #[test]
    fn parses_kubelet_names() {
        let path = format!("/var/log/containers/web-7d9c-x2k_shop_web-server-{ID}.log");
        let file = ContainerFile::parse(Path::new(&path)).unwrap();
        assert_eq!(file.pod, "web-7d9c-x2k");
        assert_eq!(file.namespace, "shop");
        assert_eq!(file.container, "web-server");
        assert_eq!(file.container_id, ID);
    }

    #[test]
    fn rejects_other_names() {
        for name in [
            "web_shop_web.log".to_owned(),
            format!("web_shop_web-{ID}.txt"),
            format!("web_shop_web-{}.log", &ID[1..]),
            format!("web_Shop_web-{ID}.log"),
            format!("a_b_c_web-{ID}.log"),
            format!("web_shop_-{ID}.log"),
            format!("_shop_web-{ID}.log"),
        ] {
            assert_eq!(ContainerFile::parse(Path::new(&name)), None, "{name}");
        }
    }

    #[test]
    fn pod_uid_from_the_kubelet_pod_directory() {
        let file = ContainerFile::parse(Path::new(&format!("web-1_shop_app-{ID}.log"))).unwrap();
        let uid = "0f3c2a1e-1b2c-4d5e-8f90-123456789abc";
        let target = format!("/var/log/pods/shop_web-1_{uid}/app/0.log");
        assert_eq!(
            pod_uid_from_target(Path::new(&target), &file).as_deref(),
            Some(uid)
        );
        for other in [
            format!("/var/log/pods/shop_web-2_{uid}/app/0.log"),
            "/var/log/pods/shop_web-1_not-a-uid/app/0.log".to_owned(),
            format!("/logs/web-1_shop_app-{ID}.log"),
        ] {
            assert_eq!(
                pod_uid_from_target(Path::new(&other), &file),
                None,
                "{other}"
            );
        }
    }
}
