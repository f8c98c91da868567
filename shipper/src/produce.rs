//! Hands records to Kafka with an idempotent, compressing rdkafka producer. Retries are
//! unbounded (`message.timeout.ms = 0`): when the broker is down, the in-flight budget fills,
//! the channels fill, and reading pauses — nothing is dropped.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use tokio::sync::mpsc::{Receiver, Sender};

use crate::checkpoint::PendingBatch;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::{Batch, Error, Result};

pub struct Producer {
    producer: FutureProducer,
    admin: Option<AdminClient<DefaultClientContext>>,
    topic_partitions: i32,
    known_topics: HashSet<String>,
    metrics: Arc<Metrics>,
}

/// Flushes the producer when the pipeline stops.
pub struct FlushHandle(FutureProducer);

impl FlushHandle {
    pub fn flush(&self) {
        if let Err(e) = self.0.flush(Duration::from_secs(10)) {
            tracing::warn!(error = %e, "flush on stop did not finish");
        }
    }

    /// True when a broker answered a metadata request within `timeout` (blocking).
    pub fn metadata_ok(&self, timeout: Duration) -> bool {
        self.0.client().fetch_metadata(None, timeout).is_ok()
    }
}

impl Producer {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Producer> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.kafka.brokers)
            .set("enable.idempotence", "true")
            .set("compression.codec", &config.kafka.compression)
            .set("message.timeout.ms", "0")
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000");
        for (key, value) in &config.kafka.properties {
            client.set(key, value);
        }
        let producer: FutureProducer = client.create()?;
        let admin = if config.kafka.create_topics {
            Some(client.create::<AdminClient<DefaultClientContext>>()?)
        } else {
            None
        };
        Ok(Producer {
            producer,
            admin,
            topic_partitions: config.kafka.topic_partitions,
            known_topics: HashSet::new(),
            metrics,
        })
    }

    pub fn flush_handle(&self) -> FlushHandle {
        FlushHandle(self.producer.clone())
    }

    pub async fn run(mut self, mut rx: Receiver<Batch>, tx: Sender<PendingBatch>) -> Result<()> {
        while let Some(batch) = rx.recv().await {
            let mut deliveries = Vec::with_capacity(batch.records.len());
            for record in &batch.records {
                self.ensure_topic(&record.topic).await?;
                let mut future_record = FutureRecord::to(&record.topic)
                    .key(&record.key)
                    .payload(&record.payload);
                loop {
                    match self.producer.send_result(future_record) {
                        Ok(delivery) => {
                            self.metrics.records_produced.inc();
                            deliveries.push(delivery);
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            // The in-flight budget is used up: wait for the broker.
                            future_record = back;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err((error, _)) => return Err(error.into()),
                    }
                }
            }
            let pending = PendingBatch {
                deliveries,
                progress: batch.progress,
            };
            if tx.send(pending).await.is_err() {
                return Err(Error::Stage("checkpointer stopped".into()));
            }
        }
        Ok(())
    }

    /// Creates the topic on first sight when configured to; an existing topic is fine.
    async fn ensure_topic(&mut self, topic: &str) -> Result<()> {
        let Some(admin) = &self.admin else {
            return Ok(());
        };
        if self.known_topics.contains(topic) {
            return Ok(());
        }
        let new_topic = NewTopic::new(topic, self.topic_partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        loop {
            match admin.create_topics([&new_topic], &options).await {
                Ok(results) => {
                    for result in results {
                        match result {
                            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                            Err((name, code)) => {
                                return Err(Error::Stage(format!("creating topic {name}: {code}")))
                            }
                        }
                    }
                    break;
                }
                Err(e) => {
                    // The broker is unreachable: wait for it rather than drop anything.
                    tracing::warn!(topic, error = %e, "cannot create topic yet, retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!(topic, "topic ready");
        self.known_topics.insert(topic.to_owned());
        Ok(())
    }
}
