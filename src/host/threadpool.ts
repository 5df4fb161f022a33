/**
 * libuv runs file system calls on a pool of 4 threads by default. vmlet fsyncs every state write,
 * and an fsync holds its thread for the disk's latency: with 4, a few VMs being created at once
 * queue everything else that touches files (QEMU's run dir before a spawn, console logs, /proc
 * reads for metrics) behind them. libuv reads the size once, when the pool first starts, so this
 * module is imported before anything else. An operator's UV_THREADPOOL_SIZE wins.
 */
const THREADPOOL_SIZE = 16;

process.env.UV_THREADPOOL_SIZE ??= String(THREADPOOL_SIZE);
