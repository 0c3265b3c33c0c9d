//! Criterion micro-benchmarks of single operations (`make bench-criterion`).
//! The `make bench` summary comes from the driver (`src/main.rs`); these give
//! per-operation distributions for profiling one thing at a time.

use std::path::PathBuf;

use actionq::{ActionQueue, MemoryStore, NewAction};
use actionq_bench::{fresh_queue, server_id, Lcg, Raw};
use criterion::{criterion_group, criterion_main, Criterion};

fn db(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/criterion-db");
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir.join(name)
}

fn create(c: &mut Criterion) {
    let mut group = c.benchmark_group("create");
    let server = server_id(0);

    let queue = fresh_queue(&db("create-rust.db"), 1).expect("db");
    let mut i = 0u64;
    group.bench_function("sqlite", |b| {
        b.iter(|| {
            i += 1;
            let request = NewAction::new(&server, "restart_service").service_name(format!("s{i}"));
            queue.create_action(&request).expect("create")
        })
    });

    let path = db("create-raw.db");
    drop(fresh_queue(&path, 1).expect("db"));
    let mut raw = Raw::open(&path).expect("raw");
    group.bench_function("raw", |b| {
        b.iter(|| {
            i += 1;
            raw.create_restart(&server, &format!("s{i}"))
                .expect("create")
        })
    });

    let queue = ActionQueue::new(MemoryStore::new());
    queue.create_server(&server, None).expect("server");
    group.bench_function("memory", |b| {
        b.iter(|| {
            i += 1;
            let request = NewAction::new(&server, "restart_service").service_name(format!("s{i}"));
            queue.create_action(&request).expect("create")
        })
    });
    group.finish();
}

fn get(c: &mut Criterion) {
    let mut group = c.benchmark_group("get");
    let path = db("get.db");
    let queue = fresh_queue(&path, 1).expect("db");
    for i in 0..1000 {
        let request = NewAction::new(server_id(0), "restart_service").service_name(format!("s{i}"));
        queue.create_action(&request).expect("create");
    }
    let mut ids = Lcg(1);
    group.bench_function("sqlite", |b| {
        b.iter(|| queue.get_action(ids.below(1000) as i64 + 1).expect("get"))
    });
    let raw = Raw::open(&path).expect("raw");
    group.bench_function("raw", |b| {
        b.iter(|| raw.get(ids.below(1000) as i64 + 1).expect("get"))
    });
    group.finish();
}

criterion_group!(benches, create, get);
criterion_main!(benches);
