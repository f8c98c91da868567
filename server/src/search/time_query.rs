//! `from <= time < to` on the `time` fast column, decided per segment where it can be: a
//! segment whose records all lie in the range matches whole, one with none of them matches
//! nothing, and only a segment the range cuts reads its column. Tantivy's `RangeQuery`
//! reads the column of every segment, and inside an intersection it walks the column up to
//! each document the other clause asks for: a needle search over the last hour of a
//! 10 M-record index spent most of its 25 ms there (`./scripts/bench search`).

use std::ops::Bound;

use tantivy::columnar::Cardinality;
use tantivy::query::{
    AllQuery, AllScorer, EmptyScorer, EnableScoring, Explanation, Query, RangeQuery, Scorer, Weight,
};
use tantivy::schema::Field;
use tantivy::{DateTime, DocId, Score, SegmentReader, Term};

/// Records with `from <= time < to` (either bound optional; `time` is a fast date field).
#[derive(Debug, Clone)]
pub struct TimeRangeQuery {
    field: Field,
    from: Option<i64>,
    to: Option<i64>,
}

impl TimeRangeQuery {
    pub fn new(field: Field, from: Option<i64>, to: Option<i64>) -> TimeRangeQuery {
        TimeRangeQuery { field, from, to }
    }

    fn range_query(&self) -> RangeQuery {
        let term =
            |nanos: i64| Term::from_field_date(self.field, DateTime::from_timestamp_nanos(nanos));
        RangeQuery::new(
            self.from
                .map_or(Bound::Unbounded, |n| Bound::Included(term(n))),
            self.to
                .map_or(Bound::Unbounded, |n| Bound::Excluded(term(n))),
        )
    }
}

impl Query for TimeRangeQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        if self.from.is_none() && self.to.is_none() {
            // Tantivy's range query needs a bound; no range is every record.
            return AllQuery.weight(scoring);
        }
        let field_name = scoring.schema().get_field_name(self.field).to_owned();
        Ok(Box::new(TimeRangeWeight {
            field_name,
            from: self.from,
            to: self.to,
            column_range: self.range_query().weight(scoring)?,
        }))
    }
}

struct TimeRangeWeight {
    field_name: String,
    from: Option<i64>,
    to: Option<i64>,
    /// Tantivy's range weight, for the segments the range cuts.
    column_range: Box<dyn Weight>,
}

/// How the range meets one segment.
enum Overlap {
    All,
    None,
    Some,
}

impl TimeRangeWeight {
    fn overlap(&self, reader: &SegmentReader) -> tantivy::Result<Overlap> {
        let column = reader.fast_fields().date(&self.field_name)?;
        if column.num_docs() == 0 {
            return Ok(Overlap::None);
        }
        let (min, max) = (
            column.min_value().into_timestamp_nanos(),
            column.max_value().into_timestamp_nanos(),
        );
        let after_from = |t: i64| self.from.is_none_or(|from| t >= from);
        let before_to = |t: i64| self.to.is_none_or(|to| t < to);
        if !before_to(min) || !after_from(max) {
            return Ok(Overlap::None);
        }
        // Min and max bound every value only when every document has exactly one.
        let one_each = column.get_cardinality() == Cardinality::Full;
        Ok(if one_each && after_from(min) && before_to(max) {
            Overlap::All
        } else {
            Overlap::Some
        })
    }
}

impl Weight for TimeRangeWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(match self.overlap(reader)? {
            Overlap::All => Box::new(AllScorer::new(reader.max_doc())),
            Overlap::None => Box::new(EmptyScorer),
            Overlap::Some => self.column_range.scorer(reader, boost)?,
        })
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.column_range.explain(reader, doc)
    }
}

#[cfg(test)]
mod tests {
    use tantivy::collector::Count;
    use tantivy::query::{BooleanQuery, Occur, TermQuery};
    use tantivy::schema::{IndexRecordOption, Schema, FAST, INDEXED, STRING};
    use tantivy::{doc, Index, IndexWriter};

    use super::*;

    /// Three segments with times 0..10, 10..20 and 20..30 (every doc tagged `x` or `y`);
    /// every range that starts and ends anywhere from -1 to 31 counts what `RangeQuery`
    /// counts, alone and intersected with a term.
    #[test]
    fn counts_what_the_range_query_counts_on_whole_cut_and_missed_segments() {
        let mut builder = Schema::builder();
        let time = builder.add_date_field("time", FAST | INDEXED);
        let tag = builder.add_text_field("tag", STRING);
        let index = Index::create_in_ram(builder.build());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for segment in 0..3 {
            for t in segment * 10..segment * 10 + 10 {
                let tag_value = if t % 3 == 0 { "x" } else { "y" };
                writer
                    .add_document(doc!(time => DateTime::from_timestamp_nanos(t), tag => tag_value))
                    .unwrap();
            }
            writer.commit().unwrap();
        }
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 3);
        let bounds = |b: i64| [None, Some(b)];
        for from in -1..=31 {
            for to in -1..=31 {
                for (from, to) in bounds(from)
                    .into_iter()
                    .flat_map(|from| bounds(to).map(move |to| (from, to)))
                {
                    let ours = TimeRangeQuery::new(time, from, to);
                    let theirs: Box<dyn Query> = match (from, to) {
                        (None, None) => Box::new(AllQuery),
                        _ => Box::new(ours.range_query()),
                    };
                    let count = |q: &dyn Query| searcher.search(q, &Count).unwrap();
                    assert_eq!(count(&ours), count(&*theirs), "{from:?}..{to:?}");
                    let with_x = |q: Box<dyn Query>| {
                        BooleanQuery::new(vec![
                            (
                                Occur::Must,
                                Box::new(TermQuery::new(
                                    Term::from_field_text(tag, "x"),
                                    IndexRecordOption::Basic,
                                )) as Box<dyn Query>,
                            ),
                            (Occur::Must, q),
                        ])
                    };
                    assert_eq!(
                        count(&with_x(Box::new(ours.clone()))),
                        count(&with_x(theirs)),
                        "x and {from:?}..{to:?}"
                    );
                }
            }
        }
    }
}
