//! The benches' Kafka helpers: creating topics, and counting what arrived (the sum of
//! (high - low) watermarks over a run's topics).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

pub struct TopicCounter {
    consumer: BaseConsumer,
}

const TIMEOUT: Duration = Duration::from_secs(5);

impl TopicCounter {
    pub fn new(brokers: &str) -> anyhow::Result<TopicCounter> {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "bitesize-bench-counter")
            .set("allow.auto.create.topics", "false")
            .create()?;
        Ok(TopicCounter { consumer })
    }

    /// Records held by `topics`; a topic that does not exist yet holds none.
    pub fn count(&self, topics: &[String]) -> u64 {
        let mut total = 0;
        for topic in topics {
            let Ok(metadata) = self.consumer.fetch_metadata(Some(topic), TIMEOUT) else {
                continue;
            };
            for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
                for partition in t.partitions() {
                    if let Ok((low, high)) =
                        self.consumer
                            .fetch_watermarks(topic, partition.id(), TIMEOUT)
                    {
                        total += (high - low).max(0) as u64;
                    }
                }
            }
        }
        total
    }

    /// Waits until `topics` hold `expected` records; `alive` is asked between polls and
    /// a `false` ends the wait with an error (the process under test died).
    pub fn wait_for(
        &self,
        topics: &[String],
        expected: u64,
        timeout: Duration,
        mut alive: impl FnMut() -> bool,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let count = self.count(topics);
            if count >= expected {
                return Ok(start.elapsed());
            }
            if !alive() {
                anyhow::bail!(
                    "the process under test exited with {count} of {expected} records in Kafka"
                );
            }
            if start.elapsed() > timeout {
                anyhow::bail!("{count} of {expected} records in Kafka after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Creates `topics` with `partitions` partitions each; a topic that exists already is fine.
pub fn create_topics(brokers: &str, topics: &[String], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in block_on(admin.create_topics(&new, &options))? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating {topic}: {code}"),
        }
    }
    Ok(())
}

/// Runs `future` on this thread (the admin client completes it from its own thread).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// Sends `record`, serving the producer's events while its queue is full.
pub fn send<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>) -> anyhow::Result<()>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => anyhow::bail!("producing: {e}"),
        }
    }
}
