//! How far the server's indexing is behind Kafka, per namespace topic: records (end offset
//! minus the offset the index holds, per partition) and seconds (age of the oldest record
//! not yet indexed), with the produce rate measured between two looks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;

use super::admin::{blocking, Watermarks};
use crate::config::KafkaConfig;
use crate::search::Offsets;
use crate::Result;

/// A topic's state against what the server has indexed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TopicLag {
    /// Next offset of each partition (the offset the next record will get).
    pub end_offsets: BTreeMap<i32, i64>,
    /// Records the topic holds now (end minus start offset, summed over partitions).
    pub records: i64,
    /// Records produced but not yet indexed (searchable) by this server.
    pub lag_records: i64,
    /// Age of the oldest record not yet indexed; 0 when nothing is behind.
    pub lag_seconds: f64,
    /// Records produced per second since the previous look (absent on the first look).
    pub rate_per_second: Option<f64>,
}

/// Lag in records from watermarks and the offsets the index holds for `topic`.
pub fn lag_records(watermarks: &Watermarks, held: Option<&BTreeMap<i32, i64>>) -> i64 {
    watermarks
        .iter()
        .map(|(partition, &(low, high))| {
            let at = held
                .and_then(|h| h.get(partition))
                .copied()
                .unwrap_or(low)
                .max(low);
            (high - at).max(0)
        })
        .sum()
}

/// Previous end-offset totals, for the rate.
static SAMPLES: Mutex<Option<HashMap<String, (Instant, i64)>>> = Mutex::new(None);

fn rate(topic: &str, total_end: i64) -> Option<f64> {
    let mut samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    let samples = samples.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    let previous = samples.get(topic).copied();
    match previous {
        Some((at, total)) if now.duration_since(at) < Duration::from_secs(1) => {
            // Too close to measure; keep the older sample.
            let elapsed = now.duration_since(at).as_secs_f64();
            (elapsed > 0.0).then(|| (total_end - total).max(0) as f64 / elapsed)
        }
        Some((at, total)) => {
            samples.insert(topic.to_owned(), (now, total_end));
            Some((total_end - total).max(0) as f64 / now.duration_since(at).as_secs_f64())
        }
        None => {
            samples.insert(topic.to_owned(), (now, total_end));
            None
        }
    }
}

/// The lag of `topic` given its watermarks and the offsets the index holds.
pub async fn topic_lag(
    kafka: &KafkaConfig,
    topic: &str,
    watermarks: Watermarks,
    held: &Offsets,
) -> Result<TopicLag> {
    let held_topic = held.get(topic).cloned();
    let lag = lag_records(&watermarks, held_topic.as_ref());
    let total_end: i64 = watermarks.values().map(|(_, high)| high).sum();
    let records = watermarks.values().map(|(low, high)| high - low).sum();
    let end_offsets = watermarks
        .iter()
        .map(|(&p, &(_, high))| (p, high))
        .collect();
    let lag_seconds = if lag > 0 {
        let behind: Vec<(i32, i64)> = watermarks
            .iter()
            .filter_map(|(&p, &(low, high))| {
                let at = held_topic
                    .as_ref()
                    .and_then(|h| h.get(&p))
                    .copied()
                    .unwrap_or(low)
                    .max(low);
                (at < high).then_some((p, at))
            })
            .collect();
        oldest_age(kafka, topic, behind).await?
    } else {
        0.0
    };
    Ok(TopicLag {
        end_offsets,
        records,
        lag_records: lag,
        lag_seconds,
        rate_per_second: rate(topic, total_end),
    })
}

/// Seconds since the oldest of the records at `positions` (partition, offset) was produced.
async fn oldest_age(kafka: &KafkaConfig, topic: &str, positions: Vec<(i32, i64)>) -> Result<f64> {
    let consumer: BaseConsumer = super::client_config(kafka)?
        // librdkafka assigns partitions only with a group id; nothing joins or commits.
        .set("group.id", super::consume::UNJOINED_GROUP)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()?;
    let topic = topic.to_owned();
    blocking(move || {
        let mut assignment = TopicPartitionList::new();
        for &(partition, offset) in &positions {
            assignment.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        }
        consumer.assign(&assignment)?;
        let mut oldest: Option<i64> = None;
        let mut seen = std::collections::HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        while seen.len() < positions.len() && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                if seen.insert(message.partition()) {
                    if let Some(ms) = message.timestamp().to_millis() {
                        oldest = Some(oldest.map_or(ms, |o: i64| o.min(ms)));
                    }
                }
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        Ok(oldest.map_or(0.0, |ms| (now - ms).max(0) as f64 / 1000.0))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_what_is_past_the_held_offset() {
        let watermarks: Watermarks = [(0, (0, 10)), (1, (5, 8)), (2, (0, 0))].into();
        assert_eq!(lag_records(&watermarks, None), 13);
        let held: BTreeMap<i32, i64> = [(0, 10), (1, 6)].into();
        assert_eq!(lag_records(&watermarks, Some(&held)), 2);
        // Records removed by Kafka retention are not lag.
        let held: BTreeMap<i32, i64> = [(1, 2)].into();
        assert_eq!(lag_records(&watermarks, Some(&held)), 13);
    }
}
