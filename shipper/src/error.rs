//! The shipper's one error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: {0}")]
    Config(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    #[cfg(feature = "agent")]
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("naming: {0}")]
    Naming(#[from] bitesize_record::Error),
    #[error("stage failed: {0}")]
    Stage(String),
}

pub type Result<T> = std::result::Result<T, Error>;
