use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A read that opens whatever is there, FIFOs included: what a regular file replaced by
/// a FIFO after the check, or a hung network mount, does to a plain read.
fn open_anything(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| Error::Io {
        path: path.to_owned(),
        error,
    })
}

/// Opens the FIFO for writing and closes it, so a reader blocked in `open` sees EOF.
fn release(fifo: &Path) {
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(fifo)
            .expect("open FIFO for writing"),
    );
}

#[test]
fn regular_files_and_symlinks_to_them_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("..2025_01_01");
    std::fs::write(&file, "x").expect("write");
    // The kubelet's layout: name -> ..data/name, ..data -> a timestamped directory.
    let link = dir.path().join("policy.yaml");
    std::os::unix::fs::symlink(&file, &link).expect("symlink");
    let reader = Reader::new(vec![link, file], TIMEOUT);
    assert_eq!(
        reader.read_blocking().expect("read"),
        [b"x".to_vec(), b"x".to_vec()]
    );
}

#[test]
fn fifos_and_directories_are_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    for path in [fifo, dir.path().to_owned()] {
        let started = Instant::now();
        let err = Reader::new(vec![path.clone()], TIMEOUT)
            .read_blocking()
            .expect_err("not a regular file");
        assert!(matches!(err, Error::NotRegular { .. }), "{err}");
        assert_eq!(err.reason(), "error");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

#[tokio::test]
async fn a_read_that_blocks_times_out_and_is_not_started_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("tls.crt");
    std::fs::write(&cert, "cert").expect("write");
    let key = dir.path().join("tls.key");
    mkfifo(&key);
    let reader = Reader::with(
        vec![cert, key.clone()],
        Duration::from_millis(200),
        open_anything,
    );

    let err = reader.read().await.expect_err("blocked");
    assert!(
        matches!(&err, Error::Timeout { path, .. } if *path == key),
        "{err}"
    );
    assert_eq!(err.reason(), "timeout");
    // The first read is still stuck: no second thread, at once.
    let started = Instant::now();
    let err = reader.read().await.expect_err("still stuck");
    assert!(matches!(err, Error::Stuck { .. }), "{err}");
    assert_eq!(err.reason(), "timeout");
    assert!(started.elapsed() < Duration::from_millis(100));

    // Once the stuck read returns, the next round reads again.
    release(&key);
    std::fs::remove_file(&key).expect("remove FIFO");
    std::fs::write(&key, "key").expect("write");
    for _ in 0..100 {
        match reader.read().await {
            Ok(contents) => {
                assert_eq!(contents, [b"cert".to_vec(), b"key".to_vec()]);
                return;
            }
            Err(Error::Stuck { .. }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the released read never finished");
}

#[test]
fn a_start_up_read_that_blocks_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("policy.yaml");
    mkfifo(&fifo);
    let reader = Reader::with(
        vec![fifo.clone()],
        Duration::from_millis(200),
        open_anything,
    );
    let started = Instant::now();
    let err = reader.read_blocking().expect_err("blocked");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    release(&fifo);
}
