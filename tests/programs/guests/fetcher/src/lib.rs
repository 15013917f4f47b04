//! A test exporter that sends `GET http://TARGET/` through `wasi:http`
//! (option `target=HOST:PORT`), so its component imports `wasi:http`: the
//! sandbox refuses it unless the policy gives it `network-hosts`, and the
//! host then refuses any request to a host outside them.

use outport_exporter::bindings::wasi::http::outgoing_handler;
use outport_exporter::bindings::wasi::http::types::{Fields, OutgoingRequest, Scheme};
use outport_exporter::{
    ComponentInfo, Error, Guest, Options, OutputKind, Request, ResponseEntry, export,
};

struct Fetcher;

/// The `target=` option.
fn target(options: &Options) -> Result<&str, Error> {
    match options.as_slice() {
        [(key, value)] if key == "target" => Ok(value),
        _ => Err(Error::InvalidOption(
            "fetcher: exactly one option, target=HOST:PORT".into(),
        )),
    }
}

impl Guest for Fetcher {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: "fetcher".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "sends GET http://TARGET/, for tests".into(),
            options: Vec::new(),
        }
    }

    fn validate(options: Options) -> Result<OutputKind, Error> {
        target(&options)?;
        Ok(OutputKind::None)
    }

    fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let authority = target(&request.options)?;
        let outgoing = OutgoingRequest::new(Fields::new());
        outgoing
            .set_scheme(Some(&Scheme::Http))
            .and_then(|()| outgoing.set_authority(Some(authority)))
            .and_then(|()| outgoing.set_path_with_query(Some("/")))
            .map_err(|()| Error::Other("invalid request".into()))?;
        let pending = outgoing_handler::handle(outgoing, None)
            .map_err(|e| Error::Network(format!("{e:?}")))?;
        pending.subscribe().block();
        match pending.get() {
            Some(Ok(Ok(_))) => Err(Error::Other(format!("reached {authority}"))),
            Some(Ok(Err(e))) => Err(Error::Network(format!("{e:?}"))),
            _ => Err(Error::Network("no response".into())),
        }
    }
}

export!(Fetcher);
