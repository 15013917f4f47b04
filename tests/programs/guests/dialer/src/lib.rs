//! A test exporter that opens a TCP connection, so its component imports
//! `wasi:sockets`: the sandbox refuses it before it runs, naming the
//! import. (Were it ever run, the connection would be denied too.)

use outport_exporter::{
    ComponentInfo, Error, Guest, Options, OutputKind, Request, ResponseEntry, export,
};

struct Dialer;

impl Guest for Dialer {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: "dialer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "connects to 127.0.0.1:9, for tests".into(),
            options: Vec::new(),
        }
    }

    fn validate(_: Options) -> Result<OutputKind, Error> {
        Ok(OutputKind::None)
    }

    fn export(_: Request) -> Result<Vec<ResponseEntry>, Error> {
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Err(Error::Other("connected".into())),
            Err(e) => Err(Error::Network(e.to_string())),
        }
    }
}

export!(Dialer);
