//! Actions on layers' uncompressed views (`uncompressed-layers`).

use super::*;

/// The uncompressed view of every layer of the image, in image order.
fn all_views() -> Result<Vec<image::Blob>, Error> {
    let mut layers = Vec::new();
    for manifest in walk::image_manifests(&image::root())? {
        for layer in walk::read_manifest(&manifest.descriptor.digest)?.layers {
            layers.push(image::get_blob(&layer)?);
        }
    }
    let handles: Vec<&image::Blob> = layers.iter().collect();
    image::uncompressed_layers(&handles)
}

/// `action=first-view-only`: asks for the uncompressed view of every layer
/// (in image order), reads the first one to its end, logs how many bytes it
/// had, writes the complete output and succeeds without touching the
/// other views.
pub(crate) fn first_view_only(request: Request) -> Result<Vec<ResponseEntry>, Error> {
    let views = all_views()?;
    let first = views
        .first()
        .ok_or_else(|| Error::Unsupported("the image has no layer".into()))?;
    let stream = first.read()?;
    let mut read = 0u64;
    loop {
        match stream.blocking_read(1 << 20) {
            Ok(bytes) => read += bytes.len() as u64,
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Error::InvalidImage(e.to_debug_string()));
            }
        }
    }
    log::info(&format!("first view read: {read} bytes"));
    finish_ok(&request, false)
}

/// `action=view-streams`: opens input-streams on the last layer's view,
/// reading a first megabyte of each (the tar's first file bytes), until
/// one is refused or 16 are open; then drops them and opens one more.
/// Says how many were open and what the refusal said.
pub(crate) fn view_streams(request: Request) -> Result<Vec<ResponseEntry>, Error> {
    let views = all_views()?;
    let last = views
        .last()
        .ok_or_else(|| Error::Unsupported("the image has no layer".into()))?;
    let mut open = Vec::new();
    let mut refused = String::from("none");
    while open.len() < 16 {
        match last.read() {
            Ok(stream) => {
                stream
                    .blocking_read(1 << 20)
                    .map_err(|e| Error::Io(format!("reading the view: {e:?}")))?;
                open.push(stream);
            }
            Err(e) => {
                refused = format!("{e:?}");
                break;
            }
        }
    }
    let count = open.len();
    drop(open);
    let again = last
        .read()
        .map(|_| "opened")
        .map_err(|e| Error::Io(format!("{e:?}")))?;
    let mut out = finish_ok(&request, false)?;
    out.push(entry("test.streams.open", &count.to_string()));
    out.push(entry("test.streams.refused", &refused));
    out.push(entry("test.streams.after", again));
    Ok(out)
}

/// `action=copy-ranges`: asks `copy-ranges` for ranges it must refuse (a
/// blob index past the list, a range past the view's end, more blobs than
/// a call takes), each with a good range before it in the list, and says
/// what each call answered and how big its file was after them; then
/// copies the last view whole, its second half listed before its first,
/// and says how many bytes that wrote and the file's size.
pub(crate) fn copy_ranges(request: Request) -> Result<Vec<ResponseEntry>, Error> {
    let views = all_views()?;
    let last = views
        .last()
        .ok_or_else(|| Error::Unsupported("the image has no layer".into()))?;
    let size = last.descriptor().size;
    let destination = request
        .destination
        .as_ref()
        .ok_or_else(|| Error::Unsupported("no destination".into()))?;
    let dir = dest::preopen(&destination.preopen)?;
    let name = destination.file.as_deref().unwrap_or("out.txt");
    let file = dir
        .open_at(
            PathFlags::empty(),
            name,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::READ | DescriptorFlags::WRITE,
        )
        .map_err(|e| Error::Io(format!("opening {name}: {e:?}")))?;
    let range = |blob, start, len, offset| BlobRange {
        blob,
        start,
        len,
        offset,
    };
    let good = range(0, 0, 512, 0);
    let answer = |blobs: &[&image::Blob], ranges: &[BlobRange]| match image::copy_ranges(
        blobs, ranges, &file,
    ) {
        Ok(n) => format!("Ok({n})"),
        Err(e) => format!("{e:?}"),
    };
    let mut out = Vec::new();
    out.push(entry(
        "test.ranges.index",
        &answer(&[last], &[good, range(1, 0, 1, 512)]),
    ));
    out.push(entry(
        "test.ranges.past",
        &answer(&[last], &[good, range(0, size - 10, 11, 512)]),
    ));
    let many = vec![last; 4097];
    out.push(entry("test.ranges.blobs", &answer(&many, &[good])));
    let stat = |file: &Descriptor| file.stat().map(|s| s.size).unwrap_or(u64::MAX);
    out.push(entry("test.ranges.size-after", &stat(&file).to_string()));
    let half = size / 2;
    let whole = [range(0, half, size - half, half), range(0, 0, half, 0)];
    out.push(entry("test.ranges.copied", &answer(&[last], &whole)));
    out.push(entry("test.ranges.size", &stat(&file).to_string()));
    out.push(entry("test.ranges.view-size", &size.to_string()));
    Ok(out)
}
