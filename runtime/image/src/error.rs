//! The error type of the crate: one variant per kind of problem, each with a
//! one-line message naming the input file or blob and what is wrong with it.

use std::io;

/// Everything that can go wrong while opening, validating or streaming an image.
///
/// `Display` is a single line that names the file (or the input and the blob)
/// and the problem, ready to be shown to the user as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input path (or no prefix of `INPUT:REF`) exists.
    #[error("{input}: no such file or directory")]
    NotFound {
        /// The input as the user gave it.
        input: String,
    },
    /// The input exists but holds no image.
    #[error("{path}: not an image: {reason}")]
    NotAnImage {
        /// The input path.
        path: String,
        /// Why it is not an image.
        reason: String,
    },
    /// An I/O error on a file of the input.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The archive is compressed; only uncompressed tar archives are read.
    #[error(
        "{path}: {compression}-compressed archive: outport reads uncompressed tar archives only; decompress it first"
    )]
    CompressedArchive {
        /// The archive.
        path: String,
        /// `gzip` or `zstd`.
        compression: &'static str,
    },
    /// The tar archive is damaged.
    #[error("{path}: invalid tar archive: {message}")]
    InvalidTar {
        /// The archive.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The tar archive ends before the data of one of its entries.
    #[error("{path}: truncated tar archive: {message}")]
    TruncatedTar {
        /// The archive.
        path: String,
        /// Which entry is cut short.
        message: String,
    },
    /// A JSON file (index, manifest, config, manifest.json) does not parse or lacks a field.
    #[error("{path}: malformed JSON: {message}")]
    MalformedJson {
        /// The file or blob.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The image is inconsistent in a way not covered by another variant.
    #[error("{path}: {message}")]
    Invalid {
        /// The file concerned.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A digest is not `sha256:` followed by 64 lowercase hex digits.
    #[error(
        "{path}: invalid digest \"{digest}\" ({context}): expected \"sha256:\" followed by 64 lowercase hex digits"
    )]
    InvalidDigest {
        /// The file holding the digest.
        path: String,
        /// The digest as written.
        digest: String,
        /// What refers to it.
        context: String,
    },
    /// A media type the reader does not know in this position.
    #[error("{path}: unknown media type \"{media_type}\" for blob {digest} ({context})")]
    UnknownMediaType {
        /// The file holding the descriptor.
        path: String,
        /// The media type.
        media_type: String,
        /// The blob's digest.
        digest: String,
        /// What refers to it.
        context: String,
    },
    /// The `mediaType` field of a JSON blob disagrees with its descriptor.
    #[error(
        "{input}: blob {digest} ({context}): mediaType \"{content}\" in the content disagrees with the descriptor's \"{descriptor}\""
    )]
    MediaTypeMismatch {
        /// The input.
        input: String,
        /// The blob's digest.
        digest: String,
        /// What refers to it.
        context: String,
        /// The descriptor's media type.
        descriptor: String,
        /// The content's `mediaType` field.
        content: String,
    },
    /// A referenced blob is not in the input.
    #[error("{path}: missing blob ({context})")]
    MissingBlob {
        /// Where the blob should be.
        path: String,
        /// What refers to it.
        context: String,
    },
    /// A blob's size differs from its descriptor's.
    #[error(
        "{input}: blob {digest} ({context}): size mismatch: descriptor says {expected} bytes, file has {actual}"
    )]
    SizeMismatch {
        /// The input.
        input: String,
        /// The blob's digest.
        digest: String,
        /// What refers to it.
        context: String,
        /// The descriptor's size.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A blob's content does not hash to its digest.
    #[error("{input}: blob {digest} ({context}): digest mismatch: content hashes to {actual}")]
    DigestMismatch {
        /// The input.
        input: String,
        /// The blob's digest.
        digest: String,
        /// What refers to it.
        context: String,
        /// The digest of the content read.
        actual: String,
    },
    /// A blob's file ended before the descriptor's size.
    #[error("{input}: blob {digest} ({context}): file ended after {read} of {expected} bytes")]
    ShortBlob {
        /// The input.
        input: String,
        /// The blob's digest.
        digest: String,
        /// What refers to it.
        context: String,
        /// Bytes read before the end of file.
        read: u64,
        /// The descriptor's size.
        expected: u64,
    },
    /// A blob is larger than the caller's limit for reading it whole.
    #[error("{input}: blob {digest} ({context}): {size} bytes is more than the limit of {limit}")]
    TooLarge {
        /// The input.
        input: String,
        /// The blob's digest.
        digest: String,
        /// What refers to it.
        context: String,
        /// The blob's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A range of a blob asked for runs past its end.
    #[error(
        "{input}: blob {digest} ({context}): {len} bytes from byte {start} run past its end ({size} bytes)"
    )]
    RangeOutside {
        /// The input.
        input: String,
        /// The blob's digest.
        digest: String,
        /// What refers to it.
        context: String,
        /// The first byte asked for.
        start: u64,
        /// How many bytes were asked for.
        len: u64,
        /// The blob's size.
        size: u64,
    },
    /// I/O error while streaming a blob (reading it or writing it to a destination).
    #[error("{input}: blob {digest} ({context}): {source}")]
    BlobIo {
        /// The input.
        input: String,
        /// The blob's digest.
        digest: String,
        /// What refers to it.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A blob the input only names could not be fetched (see
    /// [`crate::Fetch`]): the fetcher's one-line reason.
    #[error("{input}: blob {digest} ({context}): {source}")]
    Fetch {
        /// The input.
        input: String,
        /// The blob's digest.
        digest: String,
        /// What refers to it.
        context: String,
        /// The fetcher's error.
        source: crate::FetchError,
    },
    /// A layer could not be converted (decompressed, its tar rewritten, or
    /// compressed again).
    #[error("{input}: converting layer {digest}: {message}")]
    Convert {
        /// The input.
        input: String,
        /// The layer's digest.
        digest: String,
        /// What went wrong.
        message: String,
    },
    /// The temporary storage could not take a converted layer (a full
    /// disk): nothing of it is kept, and another caller may try again.
    #[error("{input}: converting layer {digest}: {message}")]
    ConvertStorage {
        /// The input.
        input: String,
        /// The layer's digest.
        digest: String,
        /// What failed, naming the directory.
        message: String,
    },
    /// Converting a layer would pass a limit of the instance that asked
    /// (time, scratch bytes, host memory); another caller, with its own
    /// limits, may still convert it.
    #[error("{input}: converting layer {digest}: {message}")]
    ConvertLimit {
        /// The input.
        input: String,
        /// The layer's digest.
        digest: String,
        /// Which limit (`time`, `scratch`).
        limit: &'static str,
        /// Its value (seconds, bytes).
        value: u64,
        /// One line naming the limit and its value.
        message: String,
    },
    /// The input holds several images and no reference chose one.
    #[error("input {input} holds {count} images ({names}); choose one with {input}:REF")]
    Ambiguous {
        /// The input path.
        input: String,
        /// How many images.
        count: usize,
        /// Their names (or digests), comma-separated.
        names: String,
    },
    /// The reference matches no image, or several.
    #[error("{input}: {problem} \"{reference}\" (available: {names})")]
    NoMatch {
        /// The input path.
        input: String,
        /// The reference given.
        reference: String,
        /// `no image matches` or `several images match`.
        problem: &'static str,
        /// The available names (or digests), comma-separated.
        names: String,
    },
}

impl Error {
    /// Whether a blob's bytes turned out not to be the blob (they do not
    /// match its digest or size, or could not be read, fetched or written
    /// whole):
    /// whatever a consumer wrote from them is not the image.
    pub fn is_damaged_blob(&self) -> bool {
        matches!(
            self,
            Error::DigestMismatch { .. }
                | Error::ShortBlob { .. }
                | Error::BlobIo { .. }
                | Error::Fetch { .. }
        )
    }

    /// The caller's limit (its name and value) that stopped the work, if
    /// one did (not the input).
    pub fn limit(&self) -> Option<(&'static str, u64)> {
        match self {
            Error::ConvertLimit { limit, value, .. } => Some((limit, *value)),
            _ => None,
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A JSON parse error in `path`.
    pub(crate) fn json(path: impl Into<String>, err: &serde_json::Error) -> Self {
        Error::MalformedJson {
            path: path.into(),
            message: err.to_string(),
        }
    }

    /// Anything else wrong with `path`.
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
