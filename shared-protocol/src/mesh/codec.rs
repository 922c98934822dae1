//! `/shard/verify/1` on a libp2p stream: one frame each way (the scout's
//! request, the titan's answer), as [`crate::wire`] defines them.
//!
//! A frame whose header claims more than [`MAX_FRAME`] bytes is refused
//! before its body is read (the stream is reset). A body that is not a valid
//! request (garbage, unknown version) reaches the titan as
//! [`VerifyRequest::Invalid`] so that it can answer with a typed rejection.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use crate::wire::verify::{Request, Response};
use crate::wire::{DecodeError, MAX_FRAME, frame_len};

#[derive(Clone, Debug)]
pub enum VerifyRequest {
    Msg(Request),
    /// Inbound only: a frame within the size limit that did not decode.
    Invalid(DecodeError),
    /// Outbound only, for tests and probes: bytes sent as one frame body.
    Raw(Vec<u8>),
    /// Outbound only, for tests: bytes sent as they are, frame header
    /// included (lets a test claim a frame size it does not send).
    RawUnframed(Vec<u8>),
}

#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    io.read_exact(&mut header).await?;
    let n =
        frame_len(header, MAX_FRAME).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut body = vec![0u8; n];
    io.read_exact(&mut body).await?;
    Ok(body)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, body: &[u8]) -> io::Result<()> {
    io.write_all(&crate::wire::frame(body)).await?;
    io.close().await
}

impl libp2p::request_response::Codec for VerifyCodec {
    type Protocol = StreamProtocol;
    type Request = VerifyRequest;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<VerifyRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_frame(io).await?;
        Ok(match Request::decode(&body) {
            Ok(m) => VerifyRequest::Msg(m),
            Err(e) => VerifyRequest::Invalid(e),
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_frame(io).await?;
        Response::decode(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: VerifyRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            VerifyRequest::Msg(m) => write_frame(io, &m.encode()).await,
            VerifyRequest::Raw(bytes) => write_frame(io, &bytes).await,
            VerifyRequest::RawUnframed(bytes) => {
                io.write_all(&bytes).await?;
                io.close().await
            }
            VerifyRequest::Invalid(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e)),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.encode()).await
    }
}
