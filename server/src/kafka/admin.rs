//! Topics through the Kafka admin API: create, change retention, grow partitions, delete,
//! describe, list, and partition end offsets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Serialize;

use crate::config::KafkaConfig;
use crate::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The settings the registry manages on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    pub partitions: i32,
    pub replication_factor: i32,
    /// `retention.ms` (`-1`: unlimited).
    pub retention_ms: i64,
    /// `retention.bytes` (`-1`: unlimited).
    pub retention_bytes: i64,
}

/// A topic as Kafka describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TopicState {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// `None` when the broker does not report it.
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
}

/// A topic's partitions: first and next offset of each.
pub type Watermarks = BTreeMap<i32, (i64, i64)>;

/// The server's admin connection (shared, created on first use).
#[derive(Clone)]
pub struct TopicAdmin {
    client: Arc<AdminClient<DefaultClientContext>>,
}

static SHARED: Mutex<Option<TopicAdmin>> = Mutex::new(None);

fn rejected(topic: &str, what: &str, code: RDKafkaErrorCode) -> Error {
    use RDKafkaErrorCode as C;
    let reason = format!("{what} topic {topic:?}: {code}");
    match code {
        C::TopicAlreadyExists
        | C::InvalidPartitions
        | C::InvalidReplicationFactor
        | C::InvalidConfig
        | C::InvalidTopic
        | C::PolicyViolation
        | C::InvalidRequest => Error::BadRequest(reason),
        C::UnknownTopicOrPartition => Error::NotFound(reason),
        _ => Error::Internal(reason),
    }
}

impl TopicAdmin {
    pub fn new(kafka: &KafkaConfig) -> Result<TopicAdmin> {
        let client = super::client_config(kafka)?.create()?;
        Ok(TopicAdmin {
            client: Arc::new(client),
        })
    }

    /// The admin connection for `kafka`, created once and then reused.
    pub fn shared(kafka: &KafkaConfig) -> Result<TopicAdmin> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(admin) = shared.as_ref() {
            return Ok(admin.clone());
        }
        let admin = TopicAdmin::new(kafka)?;
        *shared = Some(admin.clone());
        Ok(admin)
    }

    fn options() -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(TIMEOUT))
            .operation_timeout(Some(TIMEOUT))
    }

    pub async fn create(&self, topic: &str, settings: TopicSettings) -> Result<()> {
        let (ms, bytes) = (
            settings.retention_ms.to_string(),
            settings.retention_bytes.to_string(),
        );
        let new = NewTopic::new(
            topic,
            settings.partitions,
            TopicReplication::Fixed(settings.replication_factor),
        )
        .set("retention.ms", &ms)
        .set("retention.bytes", &bytes);
        let results = self.client.create_topics([&new], &Self::options()).await?;
        for result in results {
            result.map_err(|(topic, code)| rejected(&topic, "creating", code))?;
        }
        Ok(())
    }

    /// Sets both retention settings with IncrementalAlterConfigs (other settings of the
    /// topic stay as they are). rdkafka 0.39 wraps only the legacy AlterConfigs, which
    /// resets every setting not sent and which newer brokers drop, so this goes through
    /// librdkafka's C API.
    pub async fn set_retention(
        &self,
        topic: &str,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> Result<()> {
        let client = self.client.clone();
        let topic = topic.to_owned();
        blocking(move || {
            let settings = [
                ("retention.ms", retention_ms.to_string()),
                ("retention.bytes", retention_bytes.to_string()),
            ];
            incremental_alter(&client, &topic, &settings)
        })
        .await
    }

    /// Grows the topic to `partitions` (Kafka cannot shrink a topic).
    pub async fn grow_partitions(&self, topic: &str, partitions: i32) -> Result<()> {
        let count = usize::try_from(partitions)
            .map_err(|_| Error::BadRequest("partitions must be positive".into()))?;
        let new = NewPartitions::new(topic, count);
        let results = self
            .client
            .create_partitions([&new], &Self::options())
            .await
            .map_err(|e| unsupported(e, "CreatePartitions (growing a topic)"))?;
        for result in results {
            result.map_err(|(topic, code)| rejected(&topic, "growing", code))?;
        }
        Ok(())
    }

    pub async fn delete(&self, topic: &str) -> Result<()> {
        let results = self
            .client
            .delete_topics(&[topic], &Self::options())
            .await?;
        for result in results {
            result.map_err(|(topic, code)| rejected(&topic, "deleting", code))?;
        }
        Ok(())
    }

    /// Every topic (internal ones left out) with its partition count and replication.
    pub async fn topics(&self) -> Result<BTreeMap<String, (i32, i32)>> {
        let client = self.client.clone();
        blocking(move || {
            let metadata = client.inner().fetch_metadata(None, TIMEOUT)?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
                .map(|t| {
                    let replication = t
                        .partitions()
                        .iter()
                        .map(|p| p.replicas().len() as i32)
                        .max()
                        .unwrap_or(0);
                    (
                        t.name().to_owned(),
                        (t.partitions().len() as i32, replication),
                    )
                })
                .collect())
        })
        .await
    }

    /// The topic's partitions and retention, or `None` when it does not exist.
    pub async fn describe(&self, topic: &str) -> Result<Option<TopicState>> {
        let Some(&(partitions, replication_factor)) = self.topics().await?.get(topic) else {
            return Ok(None);
        };
        let results = self
            .client
            .describe_configs([&ResourceSpecifier::Topic(topic)], &Self::options())
            .await?;
        let mut state = TopicState {
            name: topic.to_owned(),
            partitions,
            replication_factor,
            retention_ms: None,
            retention_bytes: None,
        };
        if let Some(Ok(resource)) = results.first() {
            let number = |key: &str| {
                resource
                    .get(key)
                    .and_then(|entry| entry.value.as_deref())
                    .and_then(|v| v.parse::<i64>().ok())
            };
            state.retention_ms = number("retention.ms");
            state.retention_bytes = number("retention.bytes");
        }
        Ok(Some(state))
    }

    /// First and next offset of each of the topic's `partitions`.
    pub async fn watermarks(&self, topic: &str, partitions: i32) -> Result<Watermarks> {
        let (client, topic) = (self.client.clone(), topic.to_owned());
        blocking(move || {
            (0..partitions)
                .map(|p| Ok((p, client.inner().fetch_watermarks(&topic, p, TIMEOUT)?)))
                .collect()
        })
        .await
    }
}

impl TopicAdmin {
    /// Creates `acls` (ALLOW, any host) with CreateAcls, through librdkafka's C API (rdkafka
    /// 0.39 does not wrap it). Returns each ACL's outcome in order; a broker without ACL
    /// support fails the whole request with the reason.
    pub async fn create_acls(
        &self,
        acls: &[super::acl::AclEntry],
    ) -> Result<Vec<std::result::Result<(), String>>> {
        let client = self.client.clone();
        let acls = acls.to_vec();
        blocking(move || create_acls(&client, &acls)).await
    }
}

fn create_acls(
    client: &AdminClient<DefaultClientContext>,
    acls: &[super::acl::AclEntry],
) -> Result<Vec<std::result::Result<(), String>>> {
    use rdkafka::bindings as rd;
    use std::ffi::{c_char, CStr, CString};
    let c_string = |text: &str| {
        CString::new(text).map_err(|_| Error::BadRequest(format!("{text:?} contains a NUL byte")))
    };
    let text = |ptr: *const c_char| {
        if ptr.is_null() {
            String::new()
        } else {
            // SAFETY: librdkafka returns NUL-terminated strings that live as long as their owner.
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        }
    };
    let host = c_string("*")?;
    let rk = client.inner().native_ptr();
    let mut bindings = Vec::new();
    let mut names = Vec::new();
    let destroy = |bindings: &mut Vec<*mut rd::rd_kafka_AclBinding_t>| {
        for binding in bindings.drain(..) {
            // SAFETY: each was returned by rd_kafka_AclBinding_new and is destroyed once.
            unsafe { rd::rd_kafka_AclBinding_destroy(binding) };
        }
    };
    for acl in acls {
        use rd::rd_kafka_AclOperation_t as Op;
        let operation = match acl.operation.as_str() {
            "READ" => Op::RD_KAFKA_ACL_OPERATION_READ,
            "WRITE" => Op::RD_KAFKA_ACL_OPERATION_WRITE,
            "CREATE" => Op::RD_KAFKA_ACL_OPERATION_CREATE,
            "DELETE" => Op::RD_KAFKA_ACL_OPERATION_DELETE,
            "ALTER" => Op::RD_KAFKA_ACL_OPERATION_ALTER,
            "DESCRIBE" => Op::RD_KAFKA_ACL_OPERATION_DESCRIBE,
            "DESCRIBE_CONFIGS" => Op::RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS,
            "ALTER_CONFIGS" => Op::RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS,
            other => {
                destroy(&mut bindings);
                return Err(Error::Internal(format!(
                    "ACL operation {other} is not known"
                )));
            }
        };
        let resource = match acl.resource_type.as_str() {
            "topic" => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            _ => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP,
        };
        let pattern = match acl.pattern_type.as_str() {
            "prefixed" => rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
            _ => rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
        };
        let (name, principal) = (c_string(&acl.resource_name)?, c_string(&acl.principal)?);
        let mut errstr = [0 as c_char; 256];
        // SAFETY: the strings outlive the call (librdkafka copies them).
        let binding = unsafe {
            rd::rd_kafka_AclBinding_new(
                resource,
                name.as_ptr(),
                pattern,
                principal.as_ptr(),
                host.as_ptr(),
                operation,
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if binding.is_null() {
            destroy(&mut bindings);
            return Err(Error::BadRequest(format!(
                "ACL {} {} on {}: {}",
                acl.principal,
                acl.operation,
                acl.resource_name,
                text(errstr.as_ptr())
            )));
        }
        bindings.push(binding);
        names.push(name);
    }
    let no_error = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
    // SAFETY: options, queue and event are destroyed below on every path; librdkafka copies
    // the bindings into its request.
    let outcome = unsafe {
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
        );
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            TIMEOUT.as_millis() as i32,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_CreateAcls(rk, bindings.as_mut_ptr(), bindings.len(), options, queue);
        let event = rd::rd_kafka_queue_poll(queue, (TIMEOUT.as_millis() + 5_000) as i32);
        let outcome = if event.is_null() {
            Err(Error::Internal(
                "creating ACLs: no answer from Kafka".into(),
            ))
        } else if rd::rd_kafka_event_error(event) != no_error {
            let code = RDKafkaErrorCode::from(rd::rd_kafka_event_error(event));
            let reason = text(rd::rd_kafka_event_error_string(event));
            Err(match code {
                RDKafkaErrorCode::UnsupportedFeature
                | RDKafkaErrorCode::SecurityDisabled
                | RDKafkaErrorCode::ClusterAuthorizationFailed => Error::BadRequest(format!(
                    "the Kafka broker does not accept ACLs ({code}: {reason}); enable its authorizer, or run the kafka-acls commands of the plan"
                )),
                _ => Error::Internal(format!("creating ACLs: {reason}")),
            })
        } else {
            let result = rd::rd_kafka_event_CreateAcls_result(event);
            let mut count = 0usize;
            let items = rd::rd_kafka_CreateAcls_result_acls(result, &mut count);
            Ok((0..count)
                .map(|i| {
                    let error = rd::rd_kafka_acl_result_error(*items.add(i));
                    if error.is_null() {
                        Ok(())
                    } else {
                        Err(text(rd::rd_kafka_error_string(error)))
                    }
                })
                .collect::<Vec<_>>())
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_AdminOptions_destroy(options);
        outcome
    };
    destroy(&mut bindings);
    outcome
}

/// A request the broker does not implement, said so; other errors as they are.
fn unsupported(error: KafkaError, what: &str) -> Error {
    match error {
        KafkaError::AdminOp(RDKafkaErrorCode::UnsupportedFeature) => Error::BadRequest(format!(
            "the Kafka broker does not support {what}; do it with the broker's own tools"
        )),
        other => Error::Kafka(other),
    }
}

/// IncrementalAlterConfigs SET of `settings` on `topic`, through librdkafka's C API (blocking).
fn incremental_alter(
    client: &AdminClient<DefaultClientContext>,
    topic: &str,
    settings: &[(&str, String)],
) -> Result<()> {
    use rdkafka::bindings as rd;
    use std::ffi::{c_char, CStr, CString};
    let c_string = |text: &str| {
        CString::new(text).map_err(|_| Error::BadRequest(format!("{text:?} contains a NUL byte")))
    };
    let name = c_string(topic)?;
    let pairs = settings
        .iter()
        .map(|(k, v)| Ok((c_string(k)?, c_string(v)?)))
        .collect::<Result<Vec<_>>>()?;
    let no_error = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
    let text = |ptr: *const c_char| {
        if ptr.is_null() {
            String::new()
        } else {
            // SAFETY: librdkafka returns NUL-terminated strings that live as long as their owner.
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        }
    };
    let rk = client.inner().native_ptr();
    // SAFETY: every object created here is destroyed below on every path; librdkafka copies
    // the resource into its request, and the event is read before it is destroyed.
    unsafe {
        let resource = rd::rd_kafka_ConfigResource_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            name.as_ptr(),
        );
        for (key, value) in &pairs {
            let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                resource,
                key.as_ptr(),
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                value.as_ptr(),
            );
            if !error.is_null() {
                let reason = text(rd::rd_kafka_error_string(error));
                rd::rd_kafka_error_destroy(error);
                rd::rd_kafka_ConfigResource_destroy(resource);
                return Err(Error::BadRequest(format!(
                    "{}: {reason}",
                    key.to_string_lossy()
                )));
            }
        }
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        );
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            TIMEOUT.as_millis() as i32,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = rd::rd_kafka_queue_new(rk);
        let mut resources = [resource];
        rd::rd_kafka_IncrementalAlterConfigs(rk, resources.as_mut_ptr(), 1, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, (TIMEOUT.as_millis() + 5_000) as i32);
        let outcome = if event.is_null() {
            Err(Error::Internal(format!(
                "changing topic {topic:?}: no answer from Kafka"
            )))
        } else if rd::rd_kafka_event_error(event) != no_error {
            let code = RDKafkaErrorCode::from(rd::rd_kafka_event_error(event));
            let reason = text(rd::rd_kafka_event_error_string(event));
            Err(match code {
                RDKafkaErrorCode::UnsupportedFeature => Error::BadRequest(
                    "the Kafka broker does not support IncrementalAlterConfigs (changing topic settings)".into(),
                ),
                _ => Error::Internal(format!("changing topic {topic:?}: {reason}")),
            })
        } else {
            let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event);
            let mut count = 0usize;
            let items = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
            let mut outcome = Ok(());
            for i in 0..count {
                let item = *items.add(i);
                let code = rd::rd_kafka_ConfigResource_error(item);
                if code != no_error {
                    let reason = text(rd::rd_kafka_ConfigResource_error_string(item));
                    let error = rejected(topic, "changing", RDKafkaErrorCode::from(code));
                    outcome = Err(match error {
                        Error::BadRequest(m) => Error::BadRequest(format!("{m} ({reason})")),
                        other => other,
                    });
                }
            }
            outcome
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_ConfigResource_destroy(resource);
        outcome
    }
}

/// Runs blocking librdkafka calls off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}
