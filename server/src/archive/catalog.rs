//! What the archive holds, read from the object listing alone (names and sizes): the
//! objects of complete spans (every part of the span is there), where the archive stage
//! must resume in each partition, and the leftovers of a span a crash cut short.
//!
//! A span is written part by part; until all its parts exist it is *incomplete* and counts
//! for nothing: it is not listed, not rehydrated, and the stage re-reads its offsets from
//! Kafka after deleting its parts. So a crash at any point neither loses nor repeats a
//! record in the archive.

use std::collections::{BTreeMap, BTreeSet};

use object_store::path::Path;
use serde::Serialize;

use super::object_name::{hour_rfc3339, ObjectName};

/// One archive object: its name and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedObject {
    pub name: ObjectName,
    pub size: u64,
}

/// The objects of one namespace (or several), grouped into spans.
#[derive(Debug, Default)]
pub struct Catalog {
    /// (topic, partition) → first offset → the span's objects.
    spans: BTreeMap<(String, i32), BTreeMap<i64, Vec<ArchivedObject>>>,
}

/// Where the archive stage resumes in one partition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// The next offset to archive (`None`: nothing archived in this partition).
    pub next_offset: Option<i64>,
    /// Objects of spans that must be written again (an incomplete span and any after it):
    /// delete them before reading on from `next_offset`.
    pub stale: Vec<Path>,
}

/// One row of `GET /api/v1/archive`: what is archived of a namespace for one hour.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct HourSummary {
    pub namespace: String,
    /// Start of the hour (UTC, RFC 3339); records of this hour have times in [hour, hour + 1 h).
    pub hour: String,
    pub objects: u64,
    pub records: u64,
    /// Compressed bytes stored.
    pub bytes: u64,
}

fn complete(objects: &[ArchivedObject]) -> bool {
    let Some(first) = objects.first() else {
        return false;
    };
    let parts: BTreeSet<u32> = objects.iter().map(|o| o.name.part).collect();
    let same_count = objects.iter().all(|o| o.name.parts == first.name.parts);
    same_count && parts.len() == objects.len() && parts.len() as u32 == first.name.parts
}

impl Catalog {
    pub fn add(&mut self, object: ArchivedObject) {
        self.spans
            .entry((object.name.topic.clone(), object.name.partition))
            .or_default()
            .entry(object.name.first)
            .or_default()
            .push(object);
    }

    /// Every object of a complete span, in (topic, partition, offset) order.
    pub fn complete_objects(&self) -> impl Iterator<Item = &ArchivedObject> {
        self.spans
            .values()
            .flat_map(|spans| spans.values())
            .filter(|objects| complete(objects))
            .flatten()
    }

    /// The (topic, partition) pairs with objects.
    pub fn partitions(&self) -> impl Iterator<Item = &(String, i32)> {
        self.spans.keys()
    }

    /// Where to resume archiving `topic`/`partition`: after the last span when all are
    /// complete, else at the first incomplete span, whose objects and those of every span
    /// after it are stale.
    pub fn resume(&self, topic: &str, partition: i32) -> Resume {
        let Some(spans) = self.spans.get(&(topic.to_owned(), partition)) else {
            return Resume::default();
        };
        match spans.iter().find(|(_, objects)| !complete(objects)) {
            Some((&first, _)) => Resume {
                next_offset: Some(first),
                stale: spans
                    .range(first..)
                    .flat_map(|(_, objects)| objects.iter().map(|o| o.name.path()))
                    .collect(),
            },
            None => Resume {
                next_offset: spans.values().flatten().map(|o| o.name.last + 1).max(),
                stale: Vec::new(),
            },
        }
    }

    /// Objects, records and bytes per namespace and hour (complete spans only), oldest
    /// first, for hours that overlap `[from, to)` (nanoseconds; `None`: unbounded).
    pub fn summary(&self, from: Option<i64>, to: Option<i64>) -> Vec<HourSummary> {
        let mut rows: BTreeMap<(String, i64), HourSummary> = BTreeMap::new();
        for object in self
            .complete_objects()
            .filter(|o| overlaps(o.name.hour, from, to))
        {
            let row = rows
                .entry((object.name.namespace.clone(), object.name.hour))
                .or_insert_with(|| HourSummary {
                    namespace: object.name.namespace.clone(),
                    hour: hour_rfc3339(object.name.hour),
                    objects: 0,
                    records: 0,
                    bytes: 0,
                });
            row.objects += 1;
            row.records += object.name.records;
            row.bytes += object.size;
        }
        let mut rows: Vec<HourSummary> = rows.into_values().collect();
        rows.sort_by(|a, b| (&a.hour, &a.namespace).cmp(&(&b.hour, &b.namespace)));
        rows
    }
}

/// Whether `hour` overlaps `[from, to)` (nanoseconds).
pub fn overlaps(hour: i64, from: Option<i64>, to: Option<i64>) -> bool {
    let start = super::object_name::hour_start(hour);
    let end = super::object_name::hour_start(hour + 1);
    from.is_none_or(|from| end > from) && to.is_none_or(|to| start < to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(partition: i32, first: i64, last: i64, part: u32, parts: u32) -> ArchivedObject {
        ArchivedObject {
            name: ObjectName {
                namespace: "shop".into(),
                hour: 490_000 + i64::from(part),
                topic: "logs.shop".into(),
                partition,
                first,
                last,
                part,
                parts,
                records: 10,
            },
            size: 100,
        }
    }

    #[test]
    fn resumes_after_the_last_complete_span() {
        let mut catalog = Catalog::default();
        for o in [
            object(0, 0, 99, 1, 1),
            object(0, 100, 199, 1, 2),
            object(0, 100, 199, 2, 2),
            object(1, 0, 9, 1, 1),
        ] {
            catalog.add(o);
        }
        assert_eq!(catalog.resume("logs.shop", 0).next_offset, Some(200));
        assert!(catalog.resume("logs.shop", 0).stale.is_empty());
        assert_eq!(catalog.resume("logs.shop", 1).next_offset, Some(10));
        assert_eq!(catalog.resume("logs.shop", 2), Resume::default());
        assert_eq!(catalog.complete_objects().count(), 4);
    }

    #[test]
    fn an_incomplete_span_and_everything_after_it_is_stale() {
        let mut catalog = Catalog::default();
        for o in [
            object(0, 0, 99, 1, 1),
            object(0, 100, 199, 2, 2), // part 1 of 2 never written: a crash
            object(0, 200, 299, 1, 1),
        ] {
            catalog.add(o);
        }
        let resume = catalog.resume("logs.shop", 0);
        assert_eq!(resume.next_offset, Some(100));
        assert_eq!(
            resume.stale,
            vec![
                object(0, 100, 199, 2, 2).name.path(),
                object(0, 200, 299, 1, 1).name.path()
            ]
        );
        let listed: Vec<i64> = catalog.complete_objects().map(|o| o.name.first).collect();
        assert_eq!(listed, vec![0, 200], "the incomplete span is not listed");
    }

    #[test]
    fn summary_counts_per_hour_within_the_range() {
        let mut catalog = Catalog::default();
        for o in [
            object(0, 0, 99, 1, 2),
            object(0, 0, 99, 2, 2),
            object(1, 0, 99, 1, 1),
        ] {
            catalog.add(o);
        }
        let all = catalog.summary(None, None);
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].objects, all[0].records, all[0].bytes), (2, 20, 200));
        let second_hour = super::super::object_name::hour_start(490_002);
        let later = catalog.summary(Some(second_hour), None);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].objects, 1);
    }
}
