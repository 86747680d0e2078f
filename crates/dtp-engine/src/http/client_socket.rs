//! Whether the client of a request is still connected. A long-poll for leases may wait many
//! seconds; a worker killed meanwhile leaves its request open in the engine, which would
//! then lease tasks to nobody (held until their leases expire, an attempt spent). Each
//! connection keeps a second handle on its socket, through which a waiting handler can
//! see that the client has closed its side.

use std::any::Any;
use std::io::ErrorKind;
use std::net::TcpStream;

use actix_web::dev::Extensions;

/// A second handle on a connection's socket (the same socket, non-blocking as the server's).
pub struct ClientSocket(TcpStream);

impl ClientSocket {
    /// `false` once the client has closed the connection (or it failed); `true` while it is
    /// open, with or without bytes waiting to be read.
    pub fn is_open(&self) -> bool {
        let mut byte = [0u8; 1];
        match self.0.peek(&mut byte) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        }
    }
}

/// `HttpServer::on_connect`: keeps a `ClientSocket` in the connection's data.
pub fn remember_socket(connection: &dyn Any, data: &mut Extensions) {
    #[cfg(unix)]
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsFd;
        if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
            data.insert(ClientSocket(TcpStream::from(fd)));
        }
    }
}
