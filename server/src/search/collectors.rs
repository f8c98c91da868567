//! Tantivy collectors for what the API aggregates: the newest-first sort key, time
//! histograms and top values of string fields.

use std::collections::HashMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DateTime, DocId, Score, SegmentOrdinal, SegmentReader};

/// The order of hits: newest first, then by namespace, partition and offset, so that every
/// record has a distinct place and paging never repeats or skips one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    pub time: i64,
    pub namespace: String,
    pub partition: u64,
    pub offset: u64,
}

impl SortKey {
    /// An opaque-looking but simple cursor: `<time>.<namespace>.<partition>.<offset>`
    /// (namespaces never contain dots).
    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.time, self.namespace, self.partition, self.offset
        )
    }

    pub fn decode(cursor: &str) -> Option<SortKey> {
        let mut parts = cursor.split('.');
        let key = SortKey {
            time: parts.next()?.parse().ok()?,
            namespace: parts.next()?.to_owned(),
            partition: parts.next()?.parse().ok()?,
            offset: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(key)
    }
}

/// Scores a document by (time, partition, offset) read from fast fields.
pub fn segment_sort_key(reader: &SegmentReader) -> impl Fn(DocId) -> (i64, u64, u64) {
    let fast = reader.fast_fields();
    let time = fast
        .date("time")
        .expect("schema has time")
        .first_or_default_col(DateTime::MIN);
    let partition = fast
        .u64("partition")
        .expect("schema has partition")
        .first_or_default_col(0);
    let offset = fast
        .u64("offset")
        .expect("schema has offset")
        .first_or_default_col(0);
    move |doc| {
        (
            time.get_val(doc).into_timestamp_nanos(),
            partition.get_val(doc),
            offset.get_val(doc),
        )
    }
}

/// Counts matching documents per time bucket of `bucket` nanoseconds starting at `from`.
pub struct Histogram {
    pub from: i64,
    pub bucket: i64,
    pub buckets: usize,
}

pub struct HistogramSegment {
    from: i64,
    bucket: i64,
    counts: Vec<u64>,
    time: std::sync::Arc<dyn tantivy::columnar::ColumnValues<DateTime>>,
}

impl Collector for Histogram {
    type Fruit = Vec<u64>;
    type Child = HistogramSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<HistogramSegment> {
        Ok(HistogramSegment {
            from: self.from,
            bucket: self.bucket,
            counts: vec![0; self.buckets],
            time: reader
                .fast_fields()
                .date("time")?
                .first_or_default_col(DateTime::MIN),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        let mut total = vec![0; self.buckets];
        for fruit in fruits {
            for (sum, count) in total.iter_mut().zip(fruit) {
                *sum += count;
            }
        }
        Ok(total)
    }
}

impl SegmentCollector for HistogramSegment {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: DocId, _: Score) {
        let nanos = self.time.get_val(doc).into_timestamp_nanos();
        if nanos >= self.from {
            let index = ((nanos - self.from) / self.bucket) as usize;
            if let Some(count) = self.counts.get_mut(index) {
                *count += 1;
            }
        }
    }

    fn harvest(self) -> Vec<u64> {
        self.counts
    }
}

/// Counts the values of a fast string field (raw metadata, or a path in a JSON field such
/// as `fields.level`) among matching documents.
pub struct TopValues {
    pub field: String,
}

pub struct TopValuesSegment {
    column: Option<StrColumn>,
    counts: Vec<u64>,
}

impl Collector for TopValues {
    type Fruit = HashMap<String, u64>;
    type Child = TopValuesSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<TopValuesSegment> {
        let column = reader.fast_fields().str(&self.field)?;
        let terms = column.as_ref().map_or(0, |c| c.num_terms());
        Ok(TopValuesSegment {
            column,
            counts: vec![0; terms],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        fruits: Vec<HashMap<String, u64>>,
    ) -> tantivy::Result<HashMap<String, u64>> {
        let mut total = HashMap::new();
        for fruit in fruits {
            for (value, count) in fruit {
                *total.entry(value).or_insert(0) += count;
            }
        }
        Ok(total)
    }
}

impl SegmentCollector for TopValuesSegment {
    type Fruit = HashMap<String, u64>;

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(column) = &self.column {
            for ord in column.term_ords(doc) {
                if let Some(count) = self.counts.get_mut(ord as usize) {
                    *count += 1;
                }
            }
        }
    }

    fn harvest(self) -> HashMap<String, u64> {
        let mut values = HashMap::new();
        let Some(column) = self.column else {
            return values;
        };
        let mut text = String::new();
        for (ord, &count) in self.counts.iter().enumerate() {
            if count > 0 && column.ord_to_str(ord as u64, &mut text).unwrap_or(false) {
                values.insert(text.clone(), count);
            }
        }
        values
    }
}
