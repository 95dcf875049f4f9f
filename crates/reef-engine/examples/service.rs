//! Reef inside a tokio service: one `Engine` shared by every connection of
//! a small line-protocol server on 127.0.0.1, and a client that talks to
//! it; the engine closes cleanly when the server stops. CI runs it.
//!
//! Protocol, one command per line, one reply per line:
//! `PUT <id> <json object>` → `OK <version>`; `GET <id>` → the JSON
//! document or `NONE`; anything wrong → `ERR <message>`.
//!
//! ```text
//! cargo run -p reef-engine --example service [DIR]
//! ```

use std::sync::Arc;

use reef_engine::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Answers one command.
async fn answer(engine: &Engine, line: &str) -> String {
    let mut words = line.splitn(3, ' ');
    let reply = match (words.next(), words.next(), words.next()) {
        (Some("PUT"), Some(id), Some(json)) => put(engine, id, json).await,
        (Some("GET"), Some(id), None) => match engine.get("service", id).await {
            Ok(Some(doc)) => Ok(reef_format::document_to_json(&doc.doc).to_string()),
            Ok(None) => Ok("NONE".to_owned()),
            Err(e) => Err(e.to_string()),
        },
        _ => Err(format!("unknown command {line:?}")),
    };
    reply.unwrap_or_else(|e| format!("ERR {e}"))
}

async fn put(engine: &Engine, id: &str, json: &str) -> Result<String, String> {
    let json = reef_format::parse_json(json).map_err(|e| e.to_string())?;
    let doc = reef_format::document_from_json(&json, "doc").map_err(|e| e.to_string())?;
    let result = engine
        .write("service", WriteRequest::new([Op::upsert(id, doc)]))
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("OK {}", result.last_version.unwrap_or_default()))
}

async fn serve(engine: Arc<Engine>, socket: TcpStream) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = answer(&engine, &line).await;
        write.write_all(format!("{reply}\n").as_bytes()).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./reef-data".to_owned());
    let engine = Arc::new(Engine::open(open_store(&dir)?, EngineOptions::default()).await?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("serving on {addr}");

    // The server: a task per connection, all sharing the engine.
    let server = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                connections.spawn(serve(Arc::clone(&engine), socket));
            }
        })
    };

    // A client.
    let socket = TcpStream::connect(addr).await?;
    let (read, mut write) = socket.into_split();
    let mut replies = BufReader::new(read).lines();
    let mut ask = async |command: &str| -> std::io::Result<String> {
        write.write_all(format!("{command}\n").as_bytes()).await?;
        let reply = replies.next_line().await?.unwrap_or_default();
        println!("> {command}\n< {reply}");
        Ok(reply)
    };
    ask(r#"PUT ada {"name":"Ada","born":1815}"#).await?;
    let got = ask("GET ada").await?;
    ask("GET grace").await?;
    ask("PUT bad [1,2]").await?;

    server.abort();
    engine.close().await?;
    if !got.contains("Ada") {
        return Err(format!("unexpected reply {got:?}").into());
    }
    Ok(())
}
