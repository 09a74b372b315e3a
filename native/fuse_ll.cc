// bucketgate_fuse: a small N-API binding of libfuse 2.9's LOW-LEVEL API (fuse_lowlevel.h).
//
// Why the low-level API: 64-bit inode numbers and file handles, the caller's uid/gid/pid/umask
// (fuse_req_ctx) and supplementary groups (fuse_req_getgroups), full setattr (explicit and "now"
// times with nanoseconds), create() with the real open flags, big_writes, and kernel cache
// invalidation (fuse_lowlevel_notify_inval_inode/entry). Requests are answered asynchronously,
// so many are in flight at once and there is no operation timeout.
//
// ---------------------------------------------------------------------------------------------
// THREADS
//   JS thread    Node's main thread. Creates sessions; polls /dev/fuse (non-blocking) and a
//                wake-up eventfd on Node's event loop (uv_poll). When the device is readable it
//                reads requests (fuse_session_receive_buf) and lets libfuse dispatch them
//                (fuse_session_process_buf): our low-level callbacks COPY what they need (names,
//                write data into the write pool, caller credentials) into a heap Request, record
//                the fuse_req_t in the pending table and queue it; when reading pauses (no more
//                requests, or 64 read) the queue goes to JavaScript inside one callback scope.
//                JS answers (fuse_reply_*), later or at once. It never blocks on the kernel:
//                reads are non-blocking and replies are writes to /dev/fuse, which do not block.
//                (Reading here rather than on a thread of our own saves two thread wake-ups per
//                request: statfs 68 -> 46 us, an untar of 500 files 3.35 -> 1.98 s.)
//   worker       One per session. Runs kernel notifications and the unmount request, in order.
//                A notification can block inside the kernel until a request that we are serving
//                is answered (page locks, the parent directory's lock), so it must not run on
//                the JS thread (which answers). Its results reach JS through a thread-safe
//                function (TSFN), like the end-of-session events.
//   threadpool   mount() runs its checks and mount(2)/fusermount in the libuv threadpool.

// LOCK
//   Core::mu guards: state, pending, next_id, jobs, unmount_queued. It is never held while
//   calling libfuse, the kernel or JavaScript, and no other lock is taken while holding it.
//   Fields written once before the threads start (se, ch, wake_fd, mountpoint) are read-only
//   afterwards. Fields marked "JS thread only" need no lock.
//   g_live_mu guards the list of mounted sessions (for the exit handler); it is a leaf lock,
//   never held together with a Core::mu.
//
// LIFECYCLE (states: kIdle -> kMounting -> kRunning -> kLoopEnded -> kFinalized)
//   Reading ends when the kernel ends the connection (external umount/fusermount -u: read()
//   gives ENODEV) or when our unmount() wakes the JS thread through the eventfd (queued on the
//   worker after earlier notifications). EndLoop then stops polling, lazily unmounts if WE asked
//   and the connection is still up, records the reason and posts kEnded. On kEnded, once every
//   pending request has been answered, the JS thread stops the worker, destroys the fuse session
//   (closing /dev/fuse, which aborts anything the kernel still waits for), posts 'unmounted' and
//   releases the TSFN so Node can exit. fuse_session_destroy is never called with requests
//   pending: a later fuse_reply_* would touch freed libfuse memory. Replies sent after reading
//   ended still reach the kernel (the fd stays open until finalization) or fail harmlessly once
//   it is gone. If the process exits while mounted (process.exit, uncaught exception), an atexit
//   handler lazily detaches the mount points so they are not left stale.
// ---------------------------------------------------------------------------------------------

#include <fuse_lowlevel.h>
#include <napi.h>
#include <uv.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

extern char** environ;

namespace {

// ---- operations -----------------------------------------------------------------------------

enum class Op : uint8_t {
  kLookup, kGetattr, kSetattr, kReadlink, kMknod, kMkdir, kUnlink, kRmdir, kSymlink, kRename,
  kLink, kOpen, kRead, kWrite, kFlush, kRelease, kFsync, kOpendir, kReaddir, kReleasedir,
  kFsyncdir, kStatfs, kSetxattr, kGetxattr, kListxattr, kRemovexattr, kAccess, kCreate,
};

const char* const kOpNames[] = {
  "lookup", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink",
  "rename", "link", "open", "read", "write", "flush", "release", "fsync", "opendir", "readdir",
  "releasedir", "fsyncdir", "statfs", "setxattr", "getxattr", "listxattr", "removexattr",
  "access", "create",
};

using OpMask = uint64_t;
constexpr OpMask Bit(Op op) { return OpMask{1} << static_cast<unsigned>(op); }

// Which reply each operation accepts (a wrong reply type is a TypeError, nothing is sent).
constexpr OpMask kEntryOps = Bit(Op::kLookup) | Bit(Op::kMknod) | Bit(Op::kMkdir) |
                             Bit(Op::kSymlink) | Bit(Op::kLink);
constexpr OpMask kAttrOps = Bit(Op::kGetattr) | Bit(Op::kSetattr);
constexpr OpMask kOpenOps = Bit(Op::kOpen) | Bit(Op::kOpendir);
constexpr OpMask kBufOps = Bit(Op::kRead) | Bit(Op::kReaddir) | Bit(Op::kGetxattr) |
                           Bit(Op::kListxattr);
constexpr OpMask kXattrSizeOps = Bit(Op::kGetxattr) | Bit(Op::kListxattr);
// Operations whose success reply carries no data: replyErr(id, 0) answers them.
constexpr OpMask kOkOps = Bit(Op::kUnlink) | Bit(Op::kRmdir) | Bit(Op::kRename) |
                          Bit(Op::kFlush) | Bit(Op::kRelease) | Bit(Op::kFsync) |
                          Bit(Op::kReleasedir) | Bit(Op::kFsyncdir) | Bit(Op::kSetxattr) |
                          Bit(Op::kRemovexattr) | Bit(Op::kAccess);
constexpr OpMask kAllOps = ~OpMask{0};

// Operations whose VFS call takes the caller's credentials: only these pay for reading the
// supplementary groups (/proc/<tid>/task/<tid>/status). read/write/flush/release do not.
constexpr OpMask kCredOps = Bit(Op::kLookup) | Bit(Op::kGetattr) | Bit(Op::kSetattr) |
                            Bit(Op::kReadlink) | Bit(Op::kMknod) | Bit(Op::kMkdir) |
                            Bit(Op::kUnlink) | Bit(Op::kRmdir) | Bit(Op::kSymlink) |
                            Bit(Op::kRename) | Bit(Op::kLink) | Bit(Op::kOpen) |
                            Bit(Op::kOpendir) | Bit(Op::kReaddir) | Bit(Op::kStatfs) |
                            Bit(Op::kAccess) | Bit(Op::kCreate);

// One kernel request, copied out of libfuse's read buffer (JS thread, while reading).
struct Request {
  Op op;
  uint64_t id = 0;
  uint64_t ino = 0;   // target inode, or the parent directory of a name operation
  uint64_t ino2 = 0;  // rename/link: the new parent
  std::string name;   // raw bytes (not necessarily UTF-8)
  std::string name2;  // rename/link: new name; symlink: the link target
  bool has_fh = false;
  uint64_t fh = 0;
  int64_t off = 0;
  uint64_t size = 0;
  int flags = 0;
  uint32_t mode = 0;
  uint64_t rdev = 0;
  int mask = 0;
  bool datasync = false;
  bool writepage = false;
  bool plus = false;   // readdir: a READDIRPLUS (entries carry attributes; see SubmitReaddirplus)
  int to_set = 0;      // setattr: FUSE_SET_ATTR_* mask
  struct stat st {};   // setattr: the new values
  std::unique_ptr<char[]> data;  // write data / setxattr value (a copy)
  size_t data_len = 0;
  int32_t slot = -1;  // write: the data was copied into this slot of the write pool instead
  uint32_t uid = 0, gid = 0, pid = 0, umask = 0;
  std::vector<gid_t> groups;
};

// Item posted from the loop/worker threads (or the JS thread itself) to JavaScript.
struct Event {
  enum class Kind { kRequest, kInit, kEnded, kNotifyDone, kUnmounted } kind;
  std::unique_ptr<Request> req;  // kRequest
  fuse_conn_info conn {};         // kInit
  uint32_t max_pages = 0;         // kInit: pages per request granted with FUSE_MAX_PAGES (0: not)
  bool readdirplus = false;       // kInit: READDIRPLUS granted in the INIT reply
  std::string reason;             // kEnded / kUnmounted
  int err = 0;                    // kEnded / kUnmounted: errno; kNotifyDone: result errno
  uint64_t notify_id = 0;         // kNotifyDone
};

// Job for the worker thread.
struct Job {
  enum class Kind { kInvalInode, kInvalEntry, kUnmount, kStop } kind;
  uint64_t notify_id = 0;
  uint64_t ino = 0;
  int64_t off = 0, len = 0;
  std::string name;
};

struct Pending {
  fuse_req_t req;  // nullptr: a request libfuse never saw (READDIRPLUS), answered with RawReply
  Op op;
  size_t size;  // read/readdir/xattr: the most bytes the kernel accepts
  uint64_t unique = 0;  // req == nullptr: the kernel's id of the request
  bool plus = false;    // readdir: answer with fuse_direntplus records
};

class Core;
void CallJs(Napi::Env env, Napi::Function fn, Core* core, Event* ev);
using Tsfn = Napi::TypedThreadSafeFunction<Core, Event, CallJs>;

// An errno-carrying failure of mount().
struct MountError {
  int err = 0;
  std::string msg;
  bool Set(int e, std::string m) {
    err = e;
    msg = std::move(m);
    return false;
  }
};

std::string ErrnoText(int err) {
  const char* name = strerrorname_np(err);
  return std::string(strerror(err)) + " (" + (name ? name : std::to_string(err)) + ")";
}

// Mounted sessions, for the exit handler. g_exiting tells the sessions that the process is
// going away: they must no longer touch the TSFN (Node is tearing it down).
std::mutex g_live_mu;  // leaf lock: never held with Core::mu_
std::vector<Core*> g_live;
std::atomic<bool> g_exiting{false};

// ---- the session core -----------------------------------------------------------------------

class Core {
 public:
  enum class State { kIdle, kMounting, kRunning, kLoopEnded, kFinalized };

  ~Core() {
    // Only reached with threads still running when Node tears the environment down (process
    // exit) with the file system mounted; detach rather than std::terminate.
    if (worker_thread_.joinable()) worker_thread_.detach();
  }

  // -- threadpool: mount --------------------------------------------------------------------
  bool DoMount(const std::string& path, const std::vector<std::string>& opts, bool nonempty,
               MountError* e);
  void AbortMount();  // JS thread, after DoMount failed

  // -- write pool (taken while reading requests, given back by JS; both on the JS thread) ----
  // A slot for `size` bytes of write data, or -1 (no pool, too big, or all slots in use).
  int32_t TakeSlot(size_t size);
  bool GiveSlot(int32_t slot);  // false: the slot was not taken (a double release)

  // -- JS thread: reading /dev/fuse ---------------------------------------------------------
  void StartPolling(Napi::Env env);
  void ReadRequests();
  void DeliverBatch();
  void EndLoop(bool woken, int err);
  void ClosePolls();
  void Submit(fuse_req_t req, std::unique_ptr<Request> r);
  // A READDIRPLUS read from the device (libfuse 2.9 cannot decode it): queued like Submit.
  void SubmitReaddirplus(const char* buf, size_t len);
  void Enqueue(Pending p, std::unique_ptr<Request> r);
  // Answer a request libfuse never saw: out header (error = -err) + data. 0 or -errno.
  int RawReply(uint64_t unique, int err, const char* data, size_t len);
  void Post(Event* ev);
  // A request or INIT from the read loop: batched and delivered when the read loop yields.
  void Deliver(Event* ev);

  // -- worker thread -----------------------------------------------------------------------
  void WorkerMain();

  // -- JS thread ---------------------------------------------------------------------------
  // Removes a pending request for a reply of an allowed type; throws a JS error otherwise.
  Pending Take(Napi::Env env, uint64_t id, OpMask allowed, const char* reply);
  void AfterReply();
  void MaybeFinalize();
  void OnEnded(const Event& ev);
  static void EnvCleanup(void* arg);

  std::mutex mu_;
  std::condition_variable cv_;  // worker queue
  State state_ = State::kIdle;
  std::unordered_map<uint64_t, Pending> pending_;
  uint64_t next_id_ = 1;
  std::deque<Job> jobs_;
  bool unmount_queued_ = false;

  // Write pool: JS-owned memory WRITE data is copied into while reading, so that a write
  // allocates nothing (a fresh buffer per 128 KiB WRITE is external memory that makes V8 run a
  // full mark-compact every ~14 MiB written). Base and slot size are set before mount() and
  // read-only afterwards; pool_ref_ (JS thread) keeps the memory alive.
  char* pool_base_ = nullptr;
  size_t slot_size_ = 0;
  std::mutex pool_mu_;  // leaf lock: guards free_slots_ only
  std::vector<int32_t> free_slots_;
  std::vector<bool> slot_taken_;
  int32_t slot_count_ = 0;
  Napi::Reference<Napi::Buffer<char>> pool_ref_;

  // INIT interception (JS thread, while reading; see ChanReceive/ChanSend).
  uint64_t init_unique_ = 0;   // unique of the INIT request being answered, 0 = none
  uint32_t kernel_minor_ = 0;  // the kernel's protocol minor from its INIT request
  bool big_requests_ = false;  // INIT reply rewritten to grant FUSE_MAX_PAGES
  uint32_t kernel_flags_ = 0;  // the flags of the kernel's INIT request
  bool readdirplus_ = false;   // INIT reply rewritten to ask for READDIRPLUS
  // Uniques of READDIRPLUS requests not answered yet: an INTERRUPT of one is dropped here
  // (libfuse would keep it in its list of interrupts for requests it does not know).
  std::unordered_set<uint64_t> raw_uniques_;

  // Written by the mount (before polling and the worker start) and read-only afterwards.
  std::string mountpoint_;
  fuse_chan* ch_ = nullptr;
  fuse_session* se_ = nullptr;
  int wake_fd_ = -1;
  std::thread worker_thread_;

  // JS thread only: /dev/fuse and the wake-up eventfd polled on Node's event loop.
  uv_poll_t* dev_poll_ = nullptr;
  uv_poll_t* wake_poll_ = nullptr;
  std::unique_ptr<char[]> rbuf_;
  size_t rbuf_size_ = 0;
  bool in_read_ = false;
  bool loop_ended_ = false;
  std::vector<Event*> batch_;
  Napi::FunctionReference on_request_;
  std::unique_ptr<Napi::AsyncContext> actx_;

  // Loop thread writes these before posting kEnded; the JS thread reads them after.
  std::string end_reason_;
  int end_err_ = 0;
  std::atomic<bool> unmount_requested_{false};  // set before waking the loop through wake_fd_

  // JS thread only.
  Tsfn tsfn_;
  bool tsfn_live_ = false;
  Napi::FunctionReference on_event_;
  std::unordered_map<uint64_t, Napi::Promise::Deferred> notifies_;
  uint64_t next_notify_ = 1;
  bool loop_joined_ = false;
  bool cleanup_hook_ = false;
  napi_env env_ = nullptr;
};

// ---- low-level callbacks (JS thread, called by libfuse while we read requests) -------------

Core* CoreOf(fuse_req_t req) { return static_cast<Core*>(fuse_req_userdata(req)); }

std::unique_ptr<Request> NewRequest(fuse_req_t req, Op op) {
  auto r = std::make_unique<Request>();
  r->op = op;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  r->uid = ctx->uid;
  r->gid = ctx->gid;
  r->pid = static_cast<uint32_t>(ctx->pid);
  r->umask = ctx->umask;
  return r;
}

void FetchGroups(fuse_req_t req, Request* r) {
  gid_t buf[64];
  int n = fuse_req_getgroups(req, 64, buf);
  if (n <= 0) return;  // unknown (process gone, pid 0, ...): no supplementary groups
  if (n <= 64) {
    r->groups.assign(buf, buf + n);
    return;
  }
  std::vector<gid_t> big(static_cast<size_t>(n));
  int m = fuse_req_getgroups(req, n, big.data());
  if (m > 0 && m <= n) r->groups.assign(big.begin(), big.begin() + m);
}

// Supplementary groups of thread `pid` from /proc (what fuse_req_getgroups reads), for requests
// libfuse never saw. Left empty when the thread is gone.
void ReadGroups(pid_t pid, Request* r) {
  if (pid <= 0) return;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task/%d/status", static_cast<int>(pid), static_cast<int>(pid));
  FILE* f = fopen(path, "re");
  if (!f) return;
  char* line = nullptr;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    if (strncmp(line, "Groups:", 7) != 0) continue;
    char* p = line + 7;
    for (;;) {
      char* end = nullptr;
      const unsigned long g = strtoul(p, &end, 10);
      if (end == p) break;
      r->groups.push_back(static_cast<gid_t>(g));
      p = end;
    }
    break;
  }
  free(line);
  fclose(f);
}

void SetFi(Request* r, const fuse_file_info* fi) {
  if (fi) {
    r->has_fh = true;
    r->fh = fi->fh;
    r->flags = fi->flags;
  }
}

// ---- the channel: /dev/fuse I/O, with requests of up to 1 MiB ----------------------------------
//
// libfuse 2.9 speaks protocol 7.19, where a request carries at most 32 pages (128 KiB): a 1 MiB
// write(2) becomes 8 WRITE round trips through the daemon. Kernels since 4.20 (protocol 7.28)
// accept FUSE_MAX_PAGES in the INIT reply and then send WRITE (and READ, up to the max_read
// mount option) requests of up to max_pages pages. libfuse cannot say so, so our channel
// (fuse_chan_new with these ops instead of libfuse's kernel channel) rewrites libfuse's INIT
// reply: minor 7.28, FUSE_MAX_PAGES, max_pages. Everything else libfuse 2.9 sends is valid at
// 7.28: request and reply layouts did not change between 7.19 and 7.28 except behind flags we
// do not set, and the opcodes added meanwhile (LSEEK, COPY_FILE_RANGE, RENAME2 with flags, ...)
// get ENOSYS from libfuse, after which the kernel falls back to what it does at 7.19.
//
// READDIRPLUS (7.21): readdir replies that carry each entry's attributes, so that `ls -l` of a
// directory costs a few requests instead of one LOOKUP per name once the kernel's entry cache
// has expired. libfuse 2.9 does not know the opcode, so when the kernel offers it the INIT reply
// asks for it (FUSE_DO_READDIRPLUS, without READDIRPLUS_AUTO: our readdir has the attributes
// anyway) and the channel takes these requests before libfuse sees them (SubmitReaddirplus);
// JavaScript gets them as "readdir" with plus set and they are answered with RawReply. An
// INTERRUPT of one of them is dropped: the reply follows soon, as for any readdir.
constexpr uint32_t kFuseInit = 26;       // FUSE_INIT opcode
constexpr uint32_t kFuseInterrupt = 36;  // FUSE_INTERRUPT opcode
constexpr uint32_t kFuseReaddirplus = 44;
constexpr uint32_t kFlagDoReaddirplus = 1u << 13;
constexpr uint32_t kMaxPagesMinor = 28;  // protocol minor that introduced FUSE_MAX_PAGES
constexpr uint32_t kFlagMaxPages = 1u << 22;
constexpr uint32_t kMaxPages = 256;      // 1 MiB requests
constexpr uint32_t kBigWrite = kMaxPages * 4096;
constexpr uint32_t kSmallWrite = 32 * 4096;
constexpr size_t kInHeader = 40;         // sizeof(struct fuse_in_header)
constexpr size_t kOutHeader = 16;        // sizeof(struct fuse_out_header)
constexpr size_t kInitOut22 = 24;        // the fuse_init_out libfuse 2.9 sends
constexpr size_t kInitOut28 = 64;        // fuse_init_out since 7.23
// Receive buffer: the largest WRITE (header + fuse_write_in + data) plus slack, as libfuse does.
constexpr size_t kChanBufSize = kBigWrite + 4096;

int ChanReceive(fuse_chan** chp, char* buf, size_t size) {
  fuse_chan* ch = *chp;
  auto* core = static_cast<Core*>(fuse_chan_data(ch));
  fuse_session* se = fuse_chan_session(ch);
  for (;;) {
    const ssize_t res = read(fuse_chan_fd(ch), buf, size);
    const int err = errno;
    if (fuse_session_exited(se)) return 0;
    if (res == -1) {
      // ENOENT: the request was interrupted before we read it; poll again (the loop polls the
      // wake-up eventfd too, so it must not block in read()).
      if (err == ENOENT) return -EAGAIN;
      if (err == ENODEV) {
        fuse_session_exit(se);
        return 0;
      }
      if (err != EINTR && err != EAGAIN) perror("bucketgate_fuse: reading /dev/fuse");
      return -err;
    }
    if (static_cast<size_t>(res) < kInHeader) {
      fprintf(stderr, "bucketgate_fuse: short read on /dev/fuse\n");
      return -EIO;
    }
    uint32_t opcode;
    memcpy(&opcode, buf + 4, 4);
    if (opcode == kFuseInit && static_cast<size_t>(res) >= kInHeader + 16) {
      uint64_t unique;
      uint32_t major, minor, flags;
      memcpy(&unique, buf + 8, 8);
      memcpy(&major, buf + kInHeader, 4);
      memcpy(&minor, buf + kInHeader + 4, 4);
      memcpy(&flags, buf + kInHeader + 12, 4);
      core->init_unique_ = unique;
      core->kernel_minor_ = major == 7 ? minor : 0;
      core->kernel_flags_ = major == 7 ? flags : 0;
    } else if (opcode == kFuseReaddirplus && core->readdirplus_) {
      core->SubmitReaddirplus(buf, static_cast<size_t>(res));
      continue;
    } else if (opcode == kFuseInterrupt && !core->raw_uniques_.empty() &&
               static_cast<size_t>(res) >= kInHeader + 8) {
      uint64_t target;
      memcpy(&target, buf + kInHeader, 8);
      if (core->raw_uniques_.count(target) != 0) continue;
    }
    return static_cast<int>(res);
  }
}

int ChanSend(fuse_chan* ch, const iovec iov[], size_t count) {
  auto* core = static_cast<Core*>(fuse_chan_data(ch));
  const int fd = fuse_chan_fd(ch);
  ssize_t res;
  if (core->init_unique_ != 0 && count == 2 && iov[0].iov_len == kOutHeader &&
      iov[1].iov_len == kInitOut22) {
    uint64_t unique;
    int32_t error;
    memcpy(&unique, static_cast<const char*>(iov[0].iov_base) + 8, 8);
    memcpy(&error, static_cast<const char*>(iov[0].iov_base) + 4, 4);
    if (unique == core->init_unique_ && error == 0 && core->big_requests_) {
      core->init_unique_ = 0;
      // fuse_out_header + fuse_init_out (7.28 layout).
      char out[kOutHeader + kInitOut28] = {};
      memcpy(out, iov[0].iov_base, kOutHeader);
      memcpy(out + kOutHeader, iov[1].iov_base, kInitOut22);
      const uint32_t len = sizeof out;
      const uint32_t minor = kMaxPagesMinor;
      uint32_t flags;
      memcpy(&flags, out + kOutHeader + 12, 4);
      flags |= kFlagMaxPages;
      if (core->readdirplus_) flags |= kFlagDoReaddirplus;
      const uint32_t max_write = kBigWrite;
      const uint32_t time_gran = 1;
      const uint16_t max_pages = kMaxPages;
      memcpy(out, &len, 4);
      memcpy(out + kOutHeader + 4, &minor, 4);
      memcpy(out + kOutHeader + 12, &flags, 4);
      memcpy(out + kOutHeader + 20, &max_write, 4);
      memcpy(out + kOutHeader + 24, &time_gran, 4);
      memcpy(out + kOutHeader + 28, &max_pages, 2);
      res = write(fd, out, sizeof out);
    } else {
      if (unique == core->init_unique_) core->init_unique_ = 0;
      res = writev(fd, iov, static_cast<int>(count));
    }
  } else {
    res = writev(fd, iov, static_cast<int>(count));
  }
  if (res == -1) {
    const int err = errno;
    // ENOENT: the request was interrupted and the reply dropped (normal).
    if (!fuse_session_exited(fuse_chan_session(ch)) && err != ENOENT) {
      perror("bucketgate_fuse: writing /dev/fuse");
    }
    return -err;
  }
  return 0;
}

void ChanDestroy(fuse_chan* ch) { close(fuse_chan_fd(ch)); }

fuse_chan_ops kChanOps = {ChanReceive, ChanSend, ChanDestroy};

void LlInit(void* userdata, fuse_conn_info* conn) {
  // big_writes comes with the mount option as well; ask explicitly so it cannot be lost.
  if (conn->capable & FUSE_CAP_BIG_WRITES) conn->want |= FUSE_CAP_BIG_WRITES;
  // open(O_TRUNC) reaches the VFS as a flag of open() instead of a separate setattr(size=0).
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  // We copy every request out of a plain memory buffer: no splice.
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  auto* core = static_cast<Core*>(userdata);
  // The channel rewrites the INIT reply to grant requests of kMaxPages pages (see ChanSend).
  core->big_requests_ = core->kernel_minor_ >= kMaxPagesMinor && conn->max_write >= kBigWrite;
  // READDIRPLUS needs 7.21; it is asked for only along with the 7.28 reply ChanSend writes.
  core->readdirplus_ = core->big_requests_ && (core->kernel_flags_ & kFlagDoReaddirplus) != 0;
  auto* ev = new Event{Event::Kind::kInit};
  ev->conn = *conn;
  ev->max_pages = core->big_requests_ ? kMaxPages : 0;
  ev->readdirplus = core->readdirplus_;
  core->Deliver(ev);
}

void LlDestroy(void*) {
  // Called from fuse_session_destroy() during finalization (JS thread); 'unmounted' is posted
  // right after by MaybeFinalize, so there is nothing to do here.
}

void LlLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto r = NewRequest(req, Op::kLookup);
  r->ino = parent;
  r->name = name;
  CoreOf(req)->Submit(req, std::move(r));
}

// Our inode numbers are persistent ids of the metadata store: no lookup counting is needed.
void LlForget(fuse_req_t req, fuse_ino_t, unsigned long) { fuse_reply_none(req); }
void LlForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

void LlGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kGetattr);
  r->ino = ino;
  SetFi(r.get(), fi);
  CoreOf(req)->Submit(req, std::move(r));
}

void LlSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kSetattr);
  r->ino = ino;
  r->to_set = to_set;
  r->st = *attr;
  SetFi(r.get(), fi);
  CoreOf(req)->Submit(req, std::move(r));
}

void LlReadlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = NewRequest(req, Op::kReadlink);
  r->ino = ino;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  auto r = NewRequest(req, Op::kMknod);
  r->ino = parent;
  r->name = name;
  r->mode = mode;
  r->rdev = rdev;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  auto r = NewRequest(req, Op::kMkdir);
  r->ino = parent;
  r->name = name;
  r->mode = mode;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto r = NewRequest(req, Op::kUnlink);
  r->ino = parent;
  r->name = name;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto r = NewRequest(req, Op::kRmdir);
  r->ino = parent;
  r->name = name;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  auto r = NewRequest(req, Op::kSymlink);
  r->ino = parent;
  r->name = name;
  r->name2 = link;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname) {
  auto r = NewRequest(req, Op::kRename);
  r->ino = parent;
  r->name = name;
  r->ino2 = newparent;
  r->name2 = newname;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  auto r = NewRequest(req, Op::kLink);
  r->ino = ino;
  r->ino2 = newparent;
  r->name2 = newname;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kOpen);
  r->ino = ino;
  r->flags = fi->flags;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kRead);
  r->ino = ino;
  r->size = size;
  r->off = off;
  SetFi(r.get(), fi);
  CoreOf(req)->Submit(req, std::move(r));
}

void LlWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kWrite);
  r->ino = ino;
  r->off = off;
  r->size = size;
  SetFi(r.get(), fi);
  r->writepage = fi->writepage != 0;
  // libfuse reuses its buffer for the next request: copy the data now, into a pool slot when
  // one is free (JS gives it back with releaseWriteSlot once the write is done).
  Core* core = CoreOf(req);
  r->data_len = size;
  r->slot = core->TakeSlot(size);
  if (r->slot >= 0) {
    memcpy(core->pool_base_ + static_cast<size_t>(r->slot) * core->slot_size_, buf, size);
  } else {
    r->data.reset(new char[size > 0 ? size : 1]);
    memcpy(r->data.get(), buf, size);
  }
  core->Submit(req, std::move(r));
}

void LlFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kFlush);
  r->ino = ino;
  SetFi(r.get(), fi);
  CoreOf(req)->Submit(req, std::move(r));
}

void LlRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kRelease);
  r->ino = ino;
  SetFi(r.get(), fi);
  CoreOf(req)->Submit(req, std::move(r));
}

void LlFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kFsync);
  r->ino = ino;
  r->datasync = datasync != 0;
  SetFi(r.get(), fi);
  CoreOf(req)->Submit(req, std::move(r));
}

void LlOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kOpendir);
  r->ino = ino;
  r->flags = fi->flags;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kReaddir);
  r->ino = ino;
  r->size = size;
  r->off = off;
  SetFi(r.get(), fi);
  CoreOf(req)->Submit(req, std::move(r));
}

void LlReleasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kReleasedir);
  r->ino = ino;
  SetFi(r.get(), fi);
  CoreOf(req)->Submit(req, std::move(r));
}

void LlFsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kFsyncdir);
  r->ino = ino;
  r->datasync = datasync != 0;
  SetFi(r.get(), fi);
  CoreOf(req)->Submit(req, std::move(r));
}

void LlStatfs(fuse_req_t req, fuse_ino_t ino) {
  auto r = NewRequest(req, Op::kStatfs);
  r->ino = ino;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                size_t size, int flags) {
  auto r = NewRequest(req, Op::kSetxattr);
  r->ino = ino;
  r->name = name;
  r->flags = flags;
  r->data.reset(new char[size > 0 ? size : 1]);
  memcpy(r->data.get(), value, size);
  r->data_len = size;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  auto r = NewRequest(req, Op::kGetxattr);
  r->ino = ino;
  r->name = name;
  r->size = size;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto r = NewRequest(req, Op::kListxattr);
  r->ino = ino;
  r->size = size;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  auto r = NewRequest(req, Op::kRemovexattr);
  r->ino = ino;
  r->name = name;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  auto r = NewRequest(req, Op::kAccess);
  r->ino = ino;
  r->mask = mask;
  CoreOf(req)->Submit(req, std::move(r));
}

void LlCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  auto r = NewRequest(req, Op::kCreate);
  r->ino = parent;
  r->name = name;
  r->mode = mode;
  r->flags = fi->flags;
  CoreOf(req)->Submit(req, std::move(r));
}

// Not implemented, so libfuse answers ENOSYS itself and the kernel stops asking: getlk/setlk/
// flock (locks stay local to this host), bmap, ioctl, poll, fallocate (EOPNOTSUPP to callers).
fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops;
  memset(&ops, 0, sizeof ops);
  ops.init = LlInit;
  ops.destroy = LlDestroy;
  ops.lookup = LlLookup;
  ops.forget = LlForget;
  ops.forget_multi = LlForgetMulti;
  ops.getattr = LlGetattr;
  ops.setattr = LlSetattr;
  ops.readlink = LlReadlink;
  ops.mknod = LlMknod;
  ops.mkdir = LlMkdir;
  ops.unlink = LlUnlink;
  ops.rmdir = LlRmdir;
  ops.symlink = LlSymlink;
  ops.rename = LlRename;
  ops.link = LlLink;
  ops.open = LlOpen;
  ops.read = LlRead;
  ops.write = LlWrite;
  ops.flush = LlFlush;
  ops.release = LlRelease;
  ops.fsync = LlFsync;
  ops.opendir = LlOpendir;
  ops.readdir = LlReaddir;
  ops.releasedir = LlReleasedir;
  ops.fsyncdir = LlFsyncdir;
  ops.statfs = LlStatfs;
  ops.setxattr = LlSetxattr;
  ops.getxattr = LlGetxattr;
  ops.listxattr = LlListxattr;
  ops.removexattr = LlRemovexattr;
  ops.access = LlAccess;
  ops.create = LlCreate;
  return ops;
}
const fuse_lowlevel_ops kOps = MakeOps();

// ---- mount helpers (threadpool) -------------------------------------------------------------

// Decode the octal escapes (\040 etc.) of a /proc/self/mountinfo path field.
std::string UnescapeMountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const char a = s[i + 1], b = s[i + 2], c = s[i + 3];
      if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out.push_back(static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool IsMountPoint(const std::string& path) {
  FILE* f = fopen("/proc/self/mountinfo", "re");
  if (!f) return false;
  char* line = nullptr;
  size_t cap = 0;
  bool found = false;
  while (!found && getline(&line, &cap, f) > 0) {
    // "<id> <parent> <maj:min> <root> <mount point> ..."
    const char* p = line;
    for (int field = 0; field < 4 && p; field++) {
      p = strchr(p, ' ');
      if (p) p++;
    }
    if (!p) continue;
    const char* end = strchr(p, ' ');
    if (!end) continue;
    if (UnescapeMountinfo(std::string(p, end)) == path) found = true;
  }
  free(line);
  fclose(f);
  return found;
}

bool IsEmptyDir(const std::string& path, int* err) {
  DIR* d = opendir(path.c_str());
  if (!d) {
    *err = errno;
    return false;
  }
  bool empty = true;
  while (dirent* de = readdir(d)) {
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  closedir(d);
  *err = 0;
  return empty;
}

// Lazily detach the mount point, as libfuse's own unmount does: umount2(MNT_DETACH) when
// privileged, else the setuid helper "fusermount -u -z". Returns 0 or an errno.
int LazyUnmount(const std::string& mp) {
  if (geteuid() == 0) {
    if (umount2(mp.c_str(), MNT_DETACH) == 0) return 0;
    if (errno != EPERM) return errno;
  }
  pid_t pid;
  const char* argv[] = {"fusermount", "-u", "-q", "-z", "--", mp.c_str(), nullptr};
  int rc = posix_spawnp(&pid, "fusermount", nullptr, nullptr, const_cast<char* const*>(argv),
                        environ);
  if (rc != 0) return rc;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return errno;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : EIO;
}

bool Core::DoMount(const std::string& path, const std::vector<std::string>& opts,
                   bool nonempty, MountError* e) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOTCONN) {
      return e->Set(err, "mount point " + path +
                             " is a stale FUSE mount (Transport endpoint is not connected); "
                             "unmount it first (fusermount -u / umount -l)");
    }
    return e->Set(err, "cannot use mount point " + path + ": " + ErrnoText(err));
  }
  if (!S_ISDIR(st.st_mode)) {
    return e->Set(ENOTDIR, "mount point " + path + " is not a directory");
  }
  char* real = realpath(path.c_str(), nullptr);
  if (!real) {
    int err = errno;
    return e->Set(err, "cannot resolve mount point " + path + ": " + ErrnoText(err));
  }
  std::string mp(real);
  free(real);
  if (IsMountPoint(mp)) {
    return e->Set(EBUSY, "mount point " + mp + " is already a mount point (unmount it first)");
  }
  if (!nonempty) {
    int err = 0;
    bool empty = IsEmptyDir(mp, &err);
    if (err) return e->Set(err, "cannot read mount point " + mp + ": " + ErrnoText(err));
    if (!empty) {
      return e->Set(ENOTEMPTY, "mount point " + mp +
                                   " is not empty (pass the 'nonempty' option to mount anyway)");
    }
  }
  if (access("/dev/fuse", R_OK | W_OK) != 0) {
    int err = errno;
    return e->Set(err, "FUSE device /dev/fuse is not usable: " + ErrnoText(err) +
                           " (load the fuse module, or give the container /dev/fuse)");
  }

  fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  bool ok = fuse_opt_add_arg(&args, "bucketgate") == 0;
  for (const std::string& o : opts) {
    ok = ok && fuse_opt_add_arg(&args, "-o") == 0 && fuse_opt_add_arg(&args, o.c_str()) == 0;
  }
  if (!ok) {
    fuse_opt_free_args(&args);
    return e->Set(ENOMEM, "out of memory building FUSE arguments");
  }
  errno = 0;
  fuse_chan* ch = fuse_mount(mp.c_str(), &args);
  if (!ch) {
    int err = errno != 0 ? errno : EIO;
    fuse_opt_free_args(&args);
    return e->Set(err, "mounting FUSE on " + mp + " failed: " + ErrnoText(err) +
                           " (libfuse printed details on stderr)");
  }
  // libfuse 2.9 opens /dev/fuse without O_CLOEXEC. A child process that inherited it would
  // keep the connection alive after we close ours, so an aborted session would hang its users
  // instead of failing them. (Children forked between the open and this line still inherit it.)
  fcntl(fuse_chan_fd(ch), F_SETFD, FD_CLOEXEC);
  // Our channel (see ChanSend) on a duplicate of the device fd; libfuse's is destroyed, which
  // closes its fd but not the connection.
  const int dev = fcntl(fuse_chan_fd(ch), F_DUPFD_CLOEXEC, 0);
  fuse_chan* own = dev >= 0 ? fuse_chan_new(&kChanOps, dev, kChanBufSize, this) : nullptr;
  if (!own) {
    int err = dev < 0 ? errno : ENOMEM;
    if (dev >= 0) close(dev);
    fuse_opt_free_args(&args);
    fuse_unmount(mp.c_str(), ch);
    return e->Set(err, "creating the FUSE channel failed: " + ErrnoText(err));
  }
  fuse_chan_destroy(ch);
  ch = own;
  fuse_session* se = fuse_lowlevel_new(&args, &kOps, sizeof kOps, this);
  fuse_opt_free_args(&args);
  if (!se) {
    fuse_unmount(mp.c_str(), ch);
    return e->Set(EINVAL, "libfuse rejected the mount options (see stderr for the offending one)");
  }
  int wake = eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    int err = errno;
    fuse_unmount(mp.c_str(), ch);
    fuse_session_destroy(se);
    return e->Set(err, "eventfd: " + ErrnoText(err));
  }
  fuse_session_add_chan(se, ch);
  mountpoint_ = mp;
  ch_ = ch;
  se_ = se;
  wake_fd_ = wake;
  {
    std::lock_guard<std::mutex> lk(mu_);
    state_ = State::kRunning;
  }
  {
    std::lock_guard<std::mutex> lk(g_live_mu);
    g_live.push_back(this);
  }
  // Requests are read on the JS thread (StartPolling, once the mount promise settles there).
  worker_thread_ = std::thread(&Core::WorkerMain, this);
  return true;
}

void Core::AbortMount() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    state_ = State::kIdle;
  }
  on_event_.Reset();
  if (tsfn_live_) {
    tsfn_live_ = false;
    tsfn_.Release();
  }
}

// ---- request hand-off -----------------------------------------------------------------------

void Core::Post(Event* ev) {
  if (g_exiting || tsfn_.NonBlockingCall(ev) != napi_ok) delete ev;  // Node is shutting down
}

void Core::Submit(fuse_req_t req, std::unique_ptr<Request> r) {
  if ((kCredOps & Bit(r->op)) && r->uid != 0) FetchGroups(req, r.get());
  const Pending p{req, r->op, static_cast<size_t>(r->size)};  // before r is moved from
  Enqueue(p, std::move(r));
}

void Core::SubmitReaddirplus(const char* buf, size_t len) {
  // fuse_in_header: len, opcode, unique, nodeid, uid, gid, pid, padding;
  // then fuse_read_in: fh, offset, size, read_flags, lock_owner, flags, padding.
  uint64_t unique, nodeid, fh, off;
  uint32_t uid, gid, pid, size;
  memcpy(&unique, buf + 8, 8);
  if (len < kInHeader + 24) {
    RawReply(unique, EIO, nullptr, 0);
    return;
  }
  memcpy(&nodeid, buf + 16, 8);
  memcpy(&uid, buf + 24, 4);
  memcpy(&gid, buf + 28, 4);
  memcpy(&pid, buf + 32, 4);
  memcpy(&fh, buf + kInHeader, 8);
  memcpy(&off, buf + kInHeader + 8, 8);
  memcpy(&size, buf + kInHeader + 16, 4);
  auto r = std::make_unique<Request>();
  r->op = Op::kReaddir;
  r->plus = true;
  r->ino = nodeid;
  r->has_fh = true;
  r->fh = fh;
  r->off = static_cast<int64_t>(off);
  r->size = size;
  r->uid = uid;
  r->gid = gid;
  r->pid = pid;
  if (uid != 0) ReadGroups(static_cast<pid_t>(pid), r.get());
  raw_uniques_.insert(unique);
  Pending p{nullptr, Op::kReaddir, size};
  p.unique = unique;
  p.plus = true;
  Enqueue(p, std::move(r));
}

void Core::Enqueue(Pending p, std::unique_ptr<Request> r) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lk(mu_);
    id = next_id_++;
    pending_.emplace(id, p);
  }
  r->id = id;
  auto* ev = new Event{Event::Kind::kRequest};
  ev->req = std::move(r);
  if (in_read_) {
    batch_.push_back(ev);
    return;
  }
  if (g_exiting || tsfn_.NonBlockingCall(ev) != napi_ok) {
    delete ev;
    {
      std::lock_guard<std::mutex> lk(mu_);
      pending_.erase(id);
    }
    if (p.req) {
      fuse_reply_err(p.req, EIO);
    } else {
      RawReply(p.unique, EIO, nullptr, 0);
    }
  }
}

int Core::RawReply(uint64_t unique, int err, const char* data, size_t len) {
  raw_uniques_.erase(unique);
  char hdr[kOutHeader];
  const uint32_t total = static_cast<uint32_t>(kOutHeader + len);
  const int32_t error = -err;
  memcpy(hdr, &total, 4);
  memcpy(hdr + 4, &error, 4);
  memcpy(hdr + 8, &unique, 8);
  iovec iov[2] = {{hdr, kOutHeader}, {const_cast<char*>(data), len}};
  if (writev(fuse_chan_fd(ch_), iov, len > 0 ? 2 : 1) < 0) {
    const int e = errno;
    // ENOENT: the request was interrupted and the reply dropped (normal).
    if (e != ENOENT && !fuse_session_exited(se_)) perror("bucketgate_fuse: writing /dev/fuse");
    return -e;
  }
  return 0;
}

// ---- JS thread: reading /dev/fuse ------------------------------------------------------------
//
// /dev/fuse (non-blocking) and the wake-up eventfd are polled on Node's event loop. When the
// device is readable, requests are read and dispatched by libfuse right here; our callbacks
// queue them (Deliver) and they are handed to JavaScript when reading pauses, inside one callback
// scope (promise jobs run after it). A request thus costs no thread switch on our side: a
// separate loop thread posting to the JS thread added two wake-ups per request (~22 us of a
// 68 us statfs round trip, now 46 us; a C file system answers it in ~14 us).

void Core::StartPolling(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    EndLoop(false, EIO);
    return;
  }
  const int fd = fuse_chan_fd(ch_);
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    EndLoop(false, errno);
    return;
  }
  rbuf_size_ = fuse_chan_bufsize(ch_);
  rbuf_.reset(new char[rbuf_size_]);
  actx_ = std::make_unique<Napi::AsyncContext>(env, "bucketgate-fuse-request");
  dev_poll_ = new uv_poll_t;
  wake_poll_ = new uv_poll_t;
  dev_poll_->data = this;
  wake_poll_->data = this;
  uv_poll_init(loop, dev_poll_, fd);
  uv_poll_init(loop, wake_poll_, wake_fd_);
  uv_poll_start(dev_poll_, UV_READABLE | UV_DISCONNECT, [](uv_poll_t* h, int status, int) {
    auto* core = static_cast<Core*>(h->data);
    // An error (POLLERR: the connection is gone) is told by the read itself: ENODEV ends the
    // session as an external unmount. Only if the read does not end it, the poll error does.
    core->ReadRequests();
    if (status < 0 && !core->loop_ended_) core->EndLoop(false, -status);
  });
  uv_poll_start(wake_poll_, UV_READABLE, [](uv_poll_t* h, int, int) {
    auto* core = static_cast<Core*>(h->data);
    uint64_t v;
    if (read(core->wake_fd_, &v, sizeof v) < 0 && errno != EAGAIN) perror("bucketgate_fuse: eventfd read");
    if (core->unmount_requested_) core->EndLoop(true, 0);
  });
}

void Core::ReadRequests() {
  if (loop_ended_) return;
  int loop_err = 0;
  bool end = false;
  in_read_ = true;
  // At most 64 requests per turn, so that other I/O (uploads, NFS) is not starved.
  for (int i = 0; i < 64; i++) {
    fuse_buf fbuf;
    memset(&fbuf, 0, sizeof fbuf);
    fbuf.mem = rbuf_.get();
    fbuf.size = rbuf_size_;
    fuse_chan* tmpch = ch_;
    const int res = fuse_session_receive_buf(se_, &fbuf, &tmpch);
    if (res == -EINTR || res == -EAGAIN) break;
    if (res <= 0) {
      if (res < 0) loop_err = -res;
      end = true;
      break;
    }
    fuse_session_process_buf(se_, &fbuf, tmpch);
    if (fuse_session_exited(se_)) {
      end = true;
      break;
    }
  }
  in_read_ = false;
  DeliverBatch();
  if (end) EndLoop(false, loop_err);
}

void Core::Deliver(Event* ev) {
  if (in_read_) {
    batch_.push_back(ev);
  } else {
    Post(ev);
  }
}

void Core::DeliverBatch() {
  if (batch_.empty()) return;
  std::vector<Event*> evs;
  evs.swap(batch_);
  Napi::Env env(env_);
  Napi::HandleScope hs(env);
  // Like a TSFN call: a callback scope, so that promise jobs and nextTicks run when it closes.
  Napi::CallbackScope cs(env, *actx_);
  Napi::Function fn = on_request_.Value();
  for (Event* ev : evs) CallJs(env, fn, this, ev);
}

void Core::ClosePolls() {
  for (uv_poll_t** p : {&dev_poll_, &wake_poll_}) {
    if (*p == nullptr) continue;
    uv_poll_stop(*p);
    uv_close(reinterpret_cast<uv_handle_t*>(*p),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    *p = nullptr;
  }
}

void Core::EndLoop(bool woken, int loop_err) {
  if (loop_ended_) return;
  loop_ended_ = true;
  ClosePolls();
  // Requests read before the end still reach JavaScript (their replies may fail harmlessly).
  DeliverBatch();
  fuse_session_exit(se_);
  if (g_exiting) return;  // the exit handler detached the mount; Node is going away

  // Is the kernel connection still up (POLLERR once unmounted or aborted)?
  pollfd probe = {fuse_chan_fd(ch_), 0, 0};
  const bool alive = !(poll(&probe, 1, 0) == 1 && (probe.revents & POLLERR));
  std::string reason;
  int err = 0;
  if (woken && unmount_requested_) {
    reason = "unmount";
  } else if (loop_err != 0) {
    reason = "error";
    err = loop_err;
  } else {
    reason = "external";
  }
  // Detach the mount point only if we asked for it (or the loop failed) and it is still ours:
  // after an external unmount the path may already hold someone else's mount.
  if (alive && reason != "external") {
    int uerr = LazyUnmount(mountpoint_);
    if (uerr != 0) {
      fprintf(stderr, "bucketgate_fuse: unmounting %s failed: %s\n", mountpoint_.c_str(),
              strerror(uerr));
      if (err == 0) err = uerr;
    }
  }
  end_reason_ = reason;
  end_err_ = err;
  {
    std::lock_guard<std::mutex> lk(mu_);
    state_ = State::kLoopEnded;
  }
  // Finalization runs from the event, not from inside this poll callback.
  auto* ev = new Event{Event::Kind::kEnded};
  ev->reason = reason;
  ev->err = err;
  Post(ev);
}

// ---- write pool -----------------------------------------------------------------------------

int32_t Core::TakeSlot(size_t size) {
  if (pool_base_ == nullptr || size > slot_size_) return -1;
  std::lock_guard<std::mutex> lk(pool_mu_);
  if (free_slots_.empty()) return -1;
  int32_t slot = free_slots_.back();
  free_slots_.pop_back();
  slot_taken_[static_cast<size_t>(slot)] = true;
  return slot;
}

bool Core::GiveSlot(int32_t slot) {
  std::lock_guard<std::mutex> lk(pool_mu_);
  if (!slot_taken_[static_cast<size_t>(slot)]) return false;
  slot_taken_[static_cast<size_t>(slot)] = false;
  free_slots_.push_back(slot);
  return true;
}

// ---- worker thread --------------------------------------------------------------------------

void Core::WorkerMain() {
  for (;;) {
    Job job;
    bool running;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return !jobs_.empty(); });
      job = std::move(jobs_.front());
      jobs_.pop_front();
      running = state_ == State::kRunning;
    }
    switch (job.kind) {
      case Job::Kind::kStop:
        return;
      case Job::Kind::kUnmount: {
        if (!running) break;
        unmount_requested_ = true;
        const uint64_t one = 1;
        if (write(wake_fd_, &one, sizeof one) < 0) perror("bucketgate_fuse: eventfd write");
        break;
      }
      case Job::Kind::kInvalInode:
      case Job::Kind::kInvalEntry: {
        int res = -ENOTCONN;
        if (running) {
          res = job.kind == Job::Kind::kInvalInode
                    ? fuse_lowlevel_notify_inval_inode(ch_, job.ino, job.off, job.len)
                    : fuse_lowlevel_notify_inval_entry(ch_, job.ino, job.name.data(),
                                                       job.name.size());
        }
        auto* ev = new Event{Event::Kind::kNotifyDone};
        ev->notify_id = job.notify_id;
        ev->err = res < 0 ? -res : 0;
        Post(ev);
        break;
      }
    }
  }
}

// ---- JS thread ------------------------------------------------------------------------------

Pending Core::Take(Napi::Env env, uint64_t id, OpMask allowed, const char* reply) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    throw Napi::Error::New(env, std::string(reply) + ": request " + std::to_string(id) +
                                    " is unknown or was already answered");
  }
  if (!(allowed & Bit(it->second.op))) {
    throw Napi::TypeError::New(env, std::string(reply) + " is not a valid reply to " +
                                        kOpNames[static_cast<unsigned>(it->second.op)]);
  }
  Pending p = it->second;
  pending_.erase(it);
  return p;
}

void Core::AfterReply() {
  bool ended;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ended = state_ == State::kLoopEnded && pending_.empty();
  }
  if (ended) MaybeFinalize();
}

void Core::OnEnded(const Event& ev) {
  (void)ev;
  loop_joined_ = true;  // EndLoop posted kEnded as its last act
  MaybeFinalize();
}

void Core::MaybeFinalize() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (state_ != State::kLoopEnded || !loop_joined_ || !pending_.empty()) return;
    state_ = State::kFinalized;
    jobs_.push_back(Job{Job::Kind::kStop});
  }
  cv_.notify_one();
  // Every job queued before kStop has run (notifications fail fast once the loop has ended).
  if (worker_thread_.joinable()) worker_thread_.join();
  {
    std::lock_guard<std::mutex> lk(g_live_mu);
    g_live.erase(std::remove(g_live.begin(), g_live.end(), this), g_live.end());
  }
  if (se_) fuse_session_destroy(se_);  // destroys the channel: closes /dev/fuse
  se_ = nullptr;
  on_request_.Reset();
  actx_.reset();
  ch_ = nullptr;
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
  if (cleanup_hook_) {
    napi_remove_env_cleanup_hook(env_, &Core::EnvCleanup, this);
    cleanup_hook_ = false;
  }
  // Deliver 'unmounted' asynchronously (never re-enter JS from inside a reply call), then let
  // the TSFN finish: queued items are still delivered before it closes.
  auto* ev = new Event{Event::Kind::kUnmounted};
  ev->reason = end_reason_;
  ev->err = end_err_;
  Post(ev);
  if (tsfn_live_) {
    tsfn_live_ = false;
    tsfn_.Release();
  }
}

// exit() with file systems still mounted (process.exit(), an uncaught exception): detach them,
// so that the mount points are not left stale ("Transport endpoint is not connected") once the
// kernel sees /dev/fuse close. Threads are left alone: the process is ending. (SIGKILL, or a
// signal without a handler, bypasses this: the daemon handles SIGTERM/SIGINT by unmounting.)
void AtExit() {
  g_exiting = true;
  std::lock_guard<std::mutex> lk(g_live_mu);
  for (Core* core : g_live) {
    pollfd probe = {fuse_chan_fd(core->ch_), 0, 0};
    const bool alive = !(poll(&probe, 1, 0) == 1 && (probe.revents & POLLERR));
    if (alive) LazyUnmount(core->mountpoint_);
  }
}

// Node is tearing the environment down (a worker thread ending) with the file system mounted:
// detach the mount point so it is not left stale, stop the loop, and leave the rest (pending
// requests can no longer be answered; the kernel aborts them when /dev/fuse closes at exit).
void Core::EnvCleanup(void* arg) {
  auto* core = static_cast<Core*>(arg);
  core->cleanup_hook_ = false;
  bool running;
  {
    std::lock_guard<std::mutex> lk(core->mu_);
    running = core->state_ == State::kRunning;
  }
  core->ClosePolls();
  if (running && !core->loop_ended_) {
    core->loop_ended_ = true;
    pollfd probe = {fuse_chan_fd(core->ch_), 0, 0};
    const bool alive = !(poll(&probe, 1, 0) == 1 && (probe.revents & POLLERR));
    if (alive) LazyUnmount(core->mountpoint_);
  }
  {
    std::lock_guard<std::mutex> lk(core->mu_);
    core->jobs_.push_back(Job{Job::Kind::kStop});
  }
  core->cv_.notify_one();
  if (core->worker_thread_.joinable()) core->worker_thread_.detach();
}

// ---- value conversions ----------------------------------------------------------------------

uint64_t ToU64(const Napi::Value& v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless = true;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(v.Env(), std::string(what) + " out of range");
    return x;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d > 18446744073709549568.0 || std::floor(d) != d) {
      throw Napi::RangeError::New(v.Env(), std::string(what) + " must be a non-negative integer");
    }
    return static_cast<uint64_t>(d);
  }
  throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number or bigint");
}

int64_t ToI64(const Napi::Value& v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless = true;
    int64_t x = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(v.Env(), std::string(what) + " out of range");
    return x;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || std::floor(d) != d) {
      throw Napi::RangeError::New(v.Env(), std::string(what) + " must be an integer");
    }
    return static_cast<int64_t>(d);
  }
  throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number or bigint");
}

double ToDouble(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

uint64_t GetU64(const Napi::Object& o, const char* key) { return ToU64(o.Get(key), key); }

uint64_t GetU64Or(const Napi::Object& o, const char* key, uint64_t dflt) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? dflt : ToU64(v, key);
}

bool GetBool(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return !v.IsUndefined() && v.ToBoolean().Value();
}

Napi::Object ToObject(const Napi::Value& v, const char* what) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an object");
  return v.As<Napi::Object>();
}

timespec NsToTimespec(int64_t ns) {
  int64_t sec = ns / 1000000000;
  int64_t nsec = ns % 1000000000;
  if (nsec < 0) {  // floor for times before 1970
    nsec += 1000000000;
    sec -= 1;
  }
  timespec ts;
  ts.tv_sec = static_cast<time_t>(sec);
  ts.tv_nsec = static_cast<long>(nsec);
  return ts;
}

Napi::BigInt TimespecToNs(Napi::Env env, const timespec& ts) {
  return Napi::BigInt::New(env, static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec);
}

// { ino, mode (st_mode with type bits), nlink, uid, gid, size, atimeNs, mtimeNs, ctimeNs,
//   blocks?, blksize?, rdev? } -> struct stat
void ToStat(const Napi::Object& o, struct stat* st) {
  memset(st, 0, sizeof *st);
  st->st_ino = GetU64(o, "ino");
  st->st_mode = static_cast<mode_t>(GetU64(o, "mode"));
  st->st_nlink = GetU64(o, "nlink");
  st->st_uid = static_cast<uid_t>(GetU64(o, "uid"));
  st->st_gid = static_cast<gid_t>(GetU64(o, "gid"));
  st->st_size = static_cast<off_t>(GetU64(o, "size"));
  st->st_blocks = static_cast<blkcnt_t>(GetU64Or(o, "blocks", (st->st_size + 511) / 512));
  st->st_blksize = static_cast<blksize_t>(GetU64Or(o, "blksize", 4096));
  st->st_rdev = static_cast<dev_t>(GetU64Or(o, "rdev", 0));
  st->st_atim = NsToTimespec(ToI64(o.Get("atimeNs"), "atimeNs"));
  st->st_mtim = NsToTimespec(ToI64(o.Get("mtimeNs"), "mtimeNs"));
  st->st_ctim = NsToTimespec(ToI64(o.Get("ctimeNs"), "ctimeNs"));
}

void ToEntry(const Napi::Value& v, fuse_entry_param* e) {
  Napi::Object o = ToObject(v, "entry");
  memset(e, 0, sizeof *e);
  e->ino = GetU64(o, "ino");
  e->generation = GetU64Or(o, "generation", 0);
  e->attr_timeout = ToDouble(o.Get("attrTimeout"), "attrTimeout");
  e->entry_timeout = ToDouble(o.Get("entryTimeout"), "entryTimeout");
  if (e->ino != 0 || !o.Get("attr").IsUndefined()) ToStat(ToObject(o.Get("attr"), "attr"), &e->attr);
  e->attr.st_ino = e->ino;
}

void ToFileInfo(const Napi::Value& v, fuse_file_info* fi) {
  Napi::Object o = ToObject(v, "open");
  memset(fi, 0, sizeof *fi);
  fi->fh = GetU64(o, "fh");
  fi->direct_io = GetBool(o, "directIo") ? 1 : 0;
  fi->keep_cache = GetBool(o, "keepCache") ? 1 : 0;
  fi->nonseekable = GetBool(o, "nonseekable") ? 1 : 0;
}

Napi::Buffer<char> CopyBytes(Napi::Env env, const std::string& s) {
  return Napi::Buffer<char>::Copy(env, s.data(), s.size());
}

Napi::Number Num(Napi::Env env, uint64_t x) { return Napi::Number::New(env, static_cast<double>(x)); }

// Seconds as the kernel's (seconds, nanoseconds) timeout fields (libfuse's calc_timeout_*).
void TimeoutParts(double t, uint64_t* sec, uint32_t* nsec) {
  if (!(t > 0)) {
    *sec = 0;
    *nsec = 0;
    return;
  }
  *sec = t >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(t);
  const double f = t - static_cast<double>(*sec);
  *nsec = f <= 0 ? 0 : f >= 0.999999999 ? 999999999u : static_cast<uint32_t>(f * 1e9);
}

// One struct fuse_direntplus (fuse_entry_out, 128 bytes, then fuse_dirent and the name, padded
// to 8 bytes) into out, when out_size is big enough. Returns its size either way. entry ==
// nullptr: node id 0 (name only; the kernel counts no lookup).
size_t PackDirentPlus(char* out, size_t out_size, const std::string& name, const struct stat& st,
                      off_t next, const fuse_entry_param* entry) {
  constexpr size_t kEntryOut = 128;
  constexpr size_t kDirent = 24;
  const size_t size = (kEntryOut + kDirent + name.size() + 7) & ~static_cast<size_t>(7);
  if (out == nullptr || out_size < size) return size;
  memset(out, 0, size);
  auto put64 = [&](size_t at, uint64_t v) { memcpy(out + at, &v, 8); };
  auto put32 = [&](size_t at, uint32_t v) { memcpy(out + at, &v, 4); };
  if (entry != nullptr) {
    const struct stat& a = entry->attr;
    uint64_t sec;
    uint32_t nsec;
    put64(0, entry->ino);
    put64(8, entry->generation);
    TimeoutParts(entry->entry_timeout, &sec, &nsec);
    put64(16, sec);
    put32(32, nsec);
    TimeoutParts(entry->attr_timeout, &sec, &nsec);
    put64(24, sec);
    put32(36, nsec);
    // struct fuse_attr at 40.
    put64(40, entry->ino);
    put64(48, static_cast<uint64_t>(a.st_size));
    put64(56, static_cast<uint64_t>(a.st_blocks));
    put64(64, static_cast<uint64_t>(a.st_atim.tv_sec));
    put64(72, static_cast<uint64_t>(a.st_mtim.tv_sec));
    put64(80, static_cast<uint64_t>(a.st_ctim.tv_sec));
    put32(88, static_cast<uint32_t>(a.st_atim.tv_nsec));
    put32(92, static_cast<uint32_t>(a.st_mtim.tv_nsec));
    put32(96, static_cast<uint32_t>(a.st_ctim.tv_nsec));
    put32(100, a.st_mode);
    put32(104, static_cast<uint32_t>(a.st_nlink));
    put32(108, a.st_uid);
    put32(112, a.st_gid);
    put32(116, static_cast<uint32_t>(a.st_rdev));
    put32(120, static_cast<uint32_t>(a.st_blksize));
  }
  // struct fuse_dirent at 128.
  put64(kEntryOut, st.st_ino);
  put64(kEntryOut + 8, static_cast<uint64_t>(next));
  put32(kEntryOut + 16, static_cast<uint32_t>(name.size()));
  put32(kEntryOut + 20, (st.st_mode & S_IFMT) >> 12);
  memcpy(out + kEntryOut + kDirent, name.data(), name.size());
  return size;
}

// Request -> plain JS object (see FuseRequest in src/adapters/fuse/native.ts).
Napi::Object RequestToJs(Napi::Env env, const Request& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("op", kOpNames[static_cast<unsigned>(r.op)]);
  o.Set("id", Num(env, r.id));
  Napi::Object ctx = Napi::Object::New(env);
  ctx.Set("uid", Num(env, r.uid));
  ctx.Set("gid", Num(env, r.gid));
  ctx.Set("pid", Num(env, r.pid));
  ctx.Set("umask", Num(env, r.umask));
  Napi::Array groups = Napi::Array::New(env, r.groups.size());
  for (size_t i = 0; i < r.groups.size(); i++) groups.Set(static_cast<uint32_t>(i), Num(env, r.groups[i]));
  ctx.Set("groups", groups);
  o.Set("ctx", ctx);
  auto fh = [&] {
    if (r.has_fh) o.Set("fh", Num(env, r.fh));
  };
  switch (r.op) {
    case Op::kLookup:
    case Op::kUnlink:
    case Op::kRmdir:
      o.Set("parent", Num(env, r.ino));
      o.Set("name", CopyBytes(env, r.name));
      break;
    case Op::kMknod:
      o.Set("parent", Num(env, r.ino));
      o.Set("name", CopyBytes(env, r.name));
      o.Set("mode", Num(env, r.mode));
      o.Set("rdev", Num(env, r.rdev));
      break;
    case Op::kMkdir:
      o.Set("parent", Num(env, r.ino));
      o.Set("name", CopyBytes(env, r.name));
      o.Set("mode", Num(env, r.mode));
      break;
    case Op::kCreate:
      o.Set("parent", Num(env, r.ino));
      o.Set("name", CopyBytes(env, r.name));
      o.Set("mode", Num(env, r.mode));
      o.Set("flags", Napi::Number::New(env, r.flags));
      break;
    case Op::kSymlink:
      o.Set("parent", Num(env, r.ino));
      o.Set("name", CopyBytes(env, r.name));
      o.Set("target", CopyBytes(env, r.name2));
      break;
    case Op::kRename:
      o.Set("parent", Num(env, r.ino));
      o.Set("name", CopyBytes(env, r.name));
      o.Set("newParent", Num(env, r.ino2));
      o.Set("newName", CopyBytes(env, r.name2));
      break;
    case Op::kLink:
      o.Set("ino", Num(env, r.ino));
      o.Set("newParent", Num(env, r.ino2));
      o.Set("newName", CopyBytes(env, r.name2));
      break;
    case Op::kGetattr:
    case Op::kReadlink:
    case Op::kStatfs:
      o.Set("ino", Num(env, r.ino));
      fh();
      break;
    case Op::kSetattr: {
      o.Set("ino", Num(env, r.ino));
      fh();
      Napi::Object ch = Napi::Object::New(env);
      if (r.to_set & FUSE_SET_ATTR_MODE) ch.Set("mode", Num(env, r.st.st_mode & 07777));
      if (r.to_set & FUSE_SET_ATTR_UID) ch.Set("uid", Num(env, r.st.st_uid));
      if (r.to_set & FUSE_SET_ATTR_GID) ch.Set("gid", Num(env, r.st.st_gid));
      if (r.to_set & FUSE_SET_ATTR_SIZE) ch.Set("size", Num(env, static_cast<uint64_t>(r.st.st_size)));
      if (r.to_set & FUSE_SET_ATTR_ATIME_NOW) ch.Set("atimeNs", "now");
      else if (r.to_set & FUSE_SET_ATTR_ATIME) ch.Set("atimeNs", TimespecToNs(env, r.st.st_atim));
      if (r.to_set & FUSE_SET_ATTR_MTIME_NOW) ch.Set("mtimeNs", "now");
      else if (r.to_set & FUSE_SET_ATTR_MTIME) ch.Set("mtimeNs", TimespecToNs(env, r.st.st_mtim));
      o.Set("changes", ch);
      break;
    }
    case Op::kOpen:
    case Op::kOpendir:
      o.Set("ino", Num(env, r.ino));
      o.Set("flags", Napi::Number::New(env, r.flags));
      break;
    case Op::kRead:
      o.Set("ino", Num(env, r.ino));
      o.Set("fh", Num(env, r.fh));
      o.Set("offset", Napi::Number::New(env, static_cast<double>(r.off)));
      o.Set("size", Num(env, r.size));
      break;
    case Op::kWrite: {
      o.Set("ino", Num(env, r.ino));
      o.Set("fh", Num(env, r.fh));
      o.Set("offset", Napi::Number::New(env, static_cast<double>(r.off)));
      if (r.slot >= 0) {
        // The data is in slot `slot` of the write pool; JS must hand it back (releaseWriteSlot).
        o.Set("slot", Napi::Number::New(env, r.slot));
        o.Set("size", Num(env, r.data_len));
      } else {
        // A JS-owned copy (V8-accounted memory): safe to keep after the reply.
        o.Set("data", Napi::Buffer<char>::Copy(env, r.data.get(), r.data_len));
      }
      o.Set("writepage", Napi::Boolean::New(env, r.writepage));
      break;
    }
    case Op::kFlush:
      o.Set("ino", Num(env, r.ino));
      o.Set("fh", Num(env, r.fh));
      break;
    case Op::kRelease:
    case Op::kReleasedir:
      o.Set("ino", Num(env, r.ino));
      o.Set("fh", Num(env, r.fh));
      o.Set("flags", Napi::Number::New(env, r.flags));
      break;
    case Op::kFsync:
    case Op::kFsyncdir:
      o.Set("ino", Num(env, r.ino));
      o.Set("fh", Num(env, r.fh));
      o.Set("datasync", Napi::Boolean::New(env, r.datasync));
      break;
    case Op::kReaddir:
      o.Set("ino", Num(env, r.ino));
      o.Set("fh", Num(env, r.fh));
      o.Set("offset", Napi::BigInt::New(env, static_cast<int64_t>(r.off)));
      o.Set("size", Num(env, r.size));
      o.Set("plus", Napi::Boolean::New(env, r.plus));
      break;
    case Op::kSetxattr:
      o.Set("ino", Num(env, r.ino));
      o.Set("name", CopyBytes(env, r.name));
      o.Set("value", Napi::Buffer<char>::Copy(env, r.data.get(), r.data_len));
      o.Set("flags", Napi::Number::New(env, r.flags));
      break;
    case Op::kGetxattr:
      o.Set("ino", Num(env, r.ino));
      o.Set("name", CopyBytes(env, r.name));
      o.Set("size", Num(env, r.size));
      break;
    case Op::kListxattr:
      o.Set("ino", Num(env, r.ino));
      o.Set("size", Num(env, r.size));
      break;
    case Op::kRemovexattr:
      o.Set("ino", Num(env, r.ino));
      o.Set("name", CopyBytes(env, r.name));
      break;
    case Op::kAccess:
      o.Set("ino", Num(env, r.ino));
      o.Set("mask", Napi::Number::New(env, r.mask));
      break;
  }
  return o;
}

void CallJs(Napi::Env env, Napi::Function fn, Core* core, Event* raw) {
  std::unique_ptr<Event> ev(raw);
  if (env == nullptr) {
    // The TSFN is being torn down (Node exiting) with this item queued. An unanswered request
    // is left to the kernel, which aborts it when /dev/fuse closes.
    return;
  }
  try {
    switch (ev->kind) {
      case Event::Kind::kRequest:
        fn.Call({RequestToJs(env, *ev->req)});
        break;
      case Event::Kind::kInit: {
        Napi::Object o = Napi::Object::New(env);
        o.Set("type", "init");
        o.Set("protoMajor", Num(env, ev->conn.proto_major));
        o.Set("protoMinor", Num(env, ev->conn.proto_minor));
        o.Set("maxWrite", Num(env, ev->max_pages > 0 ? kBigWrite : std::min<uint64_t>(ev->conn.max_write, kSmallWrite)));
        o.Set("maxPages", Num(env, ev->max_pages));
        o.Set("readdirplus", Napi::Boolean::New(env, ev->readdirplus));
        o.Set("maxReadahead", Num(env, ev->conn.max_readahead));
        o.Set("maxBackground", Num(env, ev->conn.max_background));
        o.Set("capable", Num(env, ev->conn.capable));
        o.Set("want", Num(env, ev->conn.want));
        if (!core->on_event_.IsEmpty()) core->on_event_.Call({o});
        break;
      }
      case Event::Kind::kEnded:
        core->OnEnded(*ev);
        break;
      case Event::Kind::kNotifyDone: {
        auto it = core->notifies_.find(ev->notify_id);
        if (it != core->notifies_.end()) {
          Napi::Promise::Deferred d = it->second;
          core->notifies_.erase(it);
          d.Resolve(Napi::Number::New(env, ev->err));
        }
        break;
      }
      case Event::Kind::kUnmounted: {
        Napi::Object o = Napi::Object::New(env);
        o.Set("type", "unmounted");
        o.Set("reason", ev->reason);
        o.Set("errno", Napi::Number::New(env, ev->err));
        if (!core->on_event_.IsEmpty()) {
          Napi::FunctionReference cb = std::move(core->on_event_);
          cb.Call({o});
        }
        break;
      }
    }
  } catch (const Napi::Error& e) {
    // A JS callback threw: surface it as an uncaught exception rather than losing it.
    napi_fatal_exception(env, e.Value());
  }
}

// ---- the JS class ---------------------------------------------------------------------------

class MountWorker : public Napi::AsyncWorker {
 public:
  MountWorker(Napi::Env env, std::shared_ptr<Core> core, std::string path,
              std::vector<std::string> opts, bool nonempty)
      : Napi::AsyncWorker(env, "bucketgate-fuse-mount"),
        core_(std::move(core)),
        path_(std::move(path)),
        opts_(std::move(opts)),
        nonempty_(nonempty),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    if (!core_->DoMount(path_, opts_, nonempty_, &err_)) SetError(err_.msg);
  }

  void OnOK() override {
    Napi::Env env = Env();
    napi_add_env_cleanup_hook(env, &Core::EnvCleanup, core_.get());
    core_->cleanup_hook_ = true;
    core_->env_ = env;
    core_->StartPolling(env);
    Napi::Object info = Napi::Object::New(env);
    info.Set("mountpoint", core_->mountpoint_);
    deferred_.Resolve(info);
  }

  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    core_->AbortMount();
    Napi::Error err = Napi::Error::New(env, e.Message());
    const char* name = strerrorname_np(err_.err);
    err.Set("code", name ? name : "EIO");
    err.Set("errno", Napi::Number::New(env, err_.err));
    err.Set("syscall", "mount");
    err.Set("path", path_);
    deferred_.Reject(err.Value());
  }

 private:
  std::shared_ptr<Core> core_;
  std::string path_;
  std::vector<std::string> opts_;
  bool nonempty_;
  MountError err_;
  Napi::Promise::Deferred deferred_;
};

class FuseSession : public Napi::ObjectWrap<FuseSession> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(
        env, "FuseSession",
        {
            InstanceMethod<&FuseSession::Mount>("mount"),
            InstanceMethod<&FuseSession::Unmount>("unmount"),
            InstanceMethod<&FuseSession::ReplyErr>("replyErr"),
            InstanceMethod<&FuseSession::ReplyEntry>("replyEntry"),
            InstanceMethod<&FuseSession::ReplyCreate>("replyCreate"),
            InstanceMethod<&FuseSession::ReplyAttr>("replyAttr"),
            InstanceMethod<&FuseSession::ReplyReadlink>("replyReadlink"),
            InstanceMethod<&FuseSession::ReplyOpen>("replyOpen"),
            InstanceMethod<&FuseSession::ReplyWrite>("replyWrite"),
            InstanceMethod<&FuseSession::ReplyBuf>("replyBuf"),
            InstanceMethod<&FuseSession::ReplyDirents>("replyDirents"),
            InstanceMethod<&FuseSession::ReplyStatfs>("replyStatfs"),
            InstanceMethod<&FuseSession::ReplyXattrSize>("replyXattrSize"),
            InstanceMethod<&FuseSession::NotifyInvalInode>("notifyInvalInode"),
            InstanceMethod<&FuseSession::NotifyInvalEntry>("notifyInvalEntry"),
            InstanceMethod<&FuseSession::SetWritePool>("setWritePool"),
            InstanceMethod<&FuseSession::ReleaseWriteSlot>("releaseWriteSlot"),
            InstanceAccessor<&FuseSession::PendingCount>("pendingCount"),
            InstanceAccessor<&FuseSession::State>("state"),
        });
  }

  explicit FuseSession(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FuseSession>(info), core_(std::make_shared<Core>()) {}

 private:
  // mount(mountpoint: string, options: string[], onRequest, onEvent): Promise<{mountpoint}>
  Napi::Value Mount(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsFunction() ||
        !info[3].IsFunction()) {
      throw Napi::TypeError::New(env, "mount(mountpoint, options[], onRequest, onEvent)");
    }
    {
      std::lock_guard<std::mutex> lk(core_->mu_);
      if (core_->state_ != Core::State::kIdle) {
        throw Napi::Error::New(env, "this FuseSession was already mounted (use a new one)");
      }
      core_->state_ = Core::State::kMounting;
    }
    std::string path = info[0].As<Napi::String>().Utf8Value();
    Napi::Array arr = info[1].As<Napi::Array>();
    std::vector<std::string> opts;
    bool nonempty = false;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsString()) throw Napi::TypeError::New(env, "options must be strings");
      opts.push_back(v.As<Napi::String>().Utf8Value());
      if (opts.back() == "nonempty") nonempty = true;
    }
    core_->on_event_ = Napi::Persistent(info[3].As<Napi::Function>());
    core_->on_request_ = Napi::Persistent(info[2].As<Napi::Function>());
    // The TSFN holds a reference to the core until it is finalized, so queued items never
    // outlive it; it keeps Node's event loop alive while mounted.
    auto* keep = new std::shared_ptr<Core>(core_);
    core_->tsfn_ = Tsfn::New(
        env, info[2].As<Napi::Function>(), "bucketgate-fuse", 0, 1, core_.get(),
        [](Napi::Env, std::shared_ptr<Core>* k, Core*) { delete k; }, keep);
    core_->tsfn_live_ = true;
    auto* worker = new MountWorker(env, core_, path, std::move(opts), nonempty);
    Napi::Promise p = worker->Promise();
    worker->Queue();
    return p;
  }

  // setWritePool(buffer, slotSize): before mount(); WRITE data of up to slotSize bytes is then
  // copied into free slots of `buffer` (slot i = bytes [i*slotSize, (i+1)*slotSize)).
  Napi::Value SetWritePool(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsNumber()) {
      throw Napi::TypeError::New(env, "setWritePool(buffer, slotSize)");
    }
    {
      std::lock_guard<std::mutex> lk(core_->mu_);
      if (core_->state_ != Core::State::kIdle || core_->pool_base_ != nullptr) {
        throw Napi::Error::New(env, "setWritePool: only once, before mount()");
      }
    }
    auto buf = info[0].As<Napi::Buffer<char>>();
    const double slot = info[1].As<Napi::Number>().DoubleValue();
    if (!(slot >= 1 && slot <= 16 * 1024 * 1024) || slot != static_cast<double>(static_cast<size_t>(slot))) {
      throw Napi::RangeError::New(env, "setWritePool: slotSize must be an integer in [1, 16 MiB]");
    }
    const size_t slot_size = static_cast<size_t>(slot);
    const size_t count = buf.Length() / slot_size;
    if (count == 0 || count > 4096) {
      throw Napi::RangeError::New(env, "setWritePool: the buffer must hold 1 to 4096 slots");
    }
    core_->pool_ref_ = Napi::Persistent(buf);
    core_->slot_size_ = slot_size;
    core_->slot_count_ = static_cast<int32_t>(count);
    core_->free_slots_.clear();
    core_->slot_taken_.assign(count, false);
    for (size_t i = count; i > 0; i--) core_->free_slots_.push_back(static_cast<int32_t>(i - 1));
    core_->pool_base_ = buf.Data();
    return env.Undefined();
  }

  // releaseWriteSlot(slot): the write that used this slot is done with its data.
  Napi::Value ReleaseWriteSlot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "releaseWriteSlot(slot)");
    const int32_t slot = info[0].As<Napi::Number>().Int32Value();
    if (slot < 0 || slot >= core_->slot_count_) throw Napi::RangeError::New(env, "releaseWriteSlot: no such slot");
    if (!core_->GiveSlot(slot)) throw Napi::Error::New(env, "releaseWriteSlot: slot " + std::to_string(slot) + " is not in use");
    return env.Undefined();
  }

  // unmount(): asks the worker to stop reading (after earlier notifications); the JS thread
  // detaches the mount point. Completion is the 'unmounted' event.
  Napi::Value Unmount(const Napi::CallbackInfo& info) {
    bool queue = false;
    {
      std::lock_guard<std::mutex> lk(core_->mu_);
      if (core_->state_ == Core::State::kRunning && !core_->unmount_queued_) {
        core_->unmount_queued_ = true;
        core_->jobs_.push_back(Job{Job::Kind::kUnmount});
        queue = true;
      }
    }
    if (queue) core_->cv_.notify_one();
    return Napi::Boolean::New(info.Env(), queue);
  }

  static uint64_t Id(const Napi::CallbackInfo& info) {
    if (info.Length() < 1) throw Napi::TypeError::New(info.Env(), "request id expected");
    return ToU64(info[0], "request id");
  }

  Napi::Value Done(Napi::Env env, int rc) {
    core_->AfterReply();
    return Napi::Number::New(env, rc);
  }

  // replyErr(id, errno): errno 0 answers success for operations without reply data.
  Napi::Value ReplyErr(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    double e = ToDouble(info[1], "errno");
    if (!(e >= 0 && e < 1000) || std::floor(e) != e) throw Napi::RangeError::New(env, "bad errno");
    Pending p = core_->Take(env, id, e == 0 ? kOkOps : kAllOps, e == 0 ? "replyErr(0)" : "replyErr");
    if (!p.req) return Done(env, core_->RawReply(p.unique, static_cast<int>(e), nullptr, 0));
    return Done(env, fuse_reply_err(p.req, static_cast<int>(e)));
  }

  Napi::Value ReplyEntry(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    fuse_entry_param e;
    ToEntry(info[1], &e);
    Pending p = core_->Take(env, id, kEntryOps, "replyEntry");
    return Done(env, fuse_reply_entry(p.req, &e));
  }

  // Returns fuse_reply_create's result: -ENOENT means the open was interrupted and the kernel
  // will never release this handle (the caller must release it).
  Napi::Value ReplyCreate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    fuse_entry_param e;
    ToEntry(info[1], &e);
    fuse_file_info fi;
    ToFileInfo(info[2], &fi);
    Pending p = core_->Take(env, id, Bit(Op::kCreate), "replyCreate");
    return Done(env, fuse_reply_create(p.req, &e, &fi));
  }

  Napi::Value ReplyAttr(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    struct stat st;
    ToStat(ToObject(info[1], "attr"), &st);
    double timeout = ToDouble(info[2], "attrTimeout");
    Pending p = core_->Take(env, id, kAttrOps, "replyAttr");
    return Done(env, fuse_reply_attr(p.req, &st, timeout));
  }

  Napi::Value ReplyReadlink(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    std::string target;
    if (info[1].IsBuffer()) {
      auto b = info[1].As<Napi::Buffer<char>>();
      target.assign(b.Data(), b.Length());
    } else if (info[1].IsString()) {
      target = info[1].As<Napi::String>().Utf8Value();
    } else {
      throw Napi::TypeError::New(env, "readlink target must be a string or Buffer");
    }
    if (target.find('\0') != std::string::npos) {
      throw Napi::TypeError::New(env, "readlink target contains NUL");
    }
    Pending p = core_->Take(env, id, Bit(Op::kReadlink), "replyReadlink");
    return Done(env, fuse_reply_readlink(p.req, target.c_str()));
  }

  // Returns fuse_reply_open's result (-ENOENT: interrupted, release the handle yourself).
  Napi::Value ReplyOpen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    fuse_file_info fi;
    ToFileInfo(info[1], &fi);
    Pending p = core_->Take(env, id, kOpenOps, "replyOpen");
    return Done(env, fuse_reply_open(p.req, &fi));
  }

  Napi::Value ReplyWrite(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    uint64_t count = ToU64(info[1], "count");
    Pending p = core_->Take(env, id, Bit(Op::kWrite), "replyWrite");
    return Done(env, fuse_reply_write(p.req, count));
  }

  // replyBuf(id, data): data beyond the size the kernel asked for is cut off.
  Napi::Value ReplyBuf(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    if (info.Length() < 2 || !info[1].IsTypedArray()) {
      throw Napi::TypeError::New(env, "replyBuf data must be a Buffer or Uint8Array");
    }
    Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
    const char* data = static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    size_t len = ta.ByteLength();
    Pending p = core_->Take(env, id, kBufOps, "replyBuf");
    if (len > p.size) len = p.size;
    return Done(env, fuse_reply_buf(p.req, data, len));
  }

  // replyDirents(id, [{ name: Buffer, ino, mode, nextOffset: bigint, entry? }]): packs as many
  // entries as fit in the size the kernel asked for and returns how many it packed. A READDIRPLUS
  // (request.plus) is answered with fuse_direntplus records: `entry` (as for replyEntry) gives
  // the kernel the entry's attributes and counts as a lookup of it; without one the record has
  // node id 0 and the kernel only lists the name.
  Napi::Value ReplyDirents(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    if (info.Length() < 2 || !info[1].IsArray()) {
      throw Napi::TypeError::New(env, "replyDirents entries must be an array");
    }
    Napi::Array arr = info[1].As<Napi::Array>();
    // Convert everything first: a bad entry throws before the request is consumed.
    struct Ent {
      std::string name;
      struct stat st;
      off_t next;
      bool has_entry = false;
      fuse_entry_param entry;
    };
    std::vector<Ent> ents;
    ents.reserve(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Object o = ToObject(arr.Get(i), "dirent");
      Napi::Value n = o.Get("name");
      if (!n.IsBuffer()) throw Napi::TypeError::New(env, "dirent name must be a Buffer");
      auto nb = n.As<Napi::Buffer<char>>();
      Ent e;
      e.name.assign(nb.Data(), nb.Length());
      if (e.name.empty() || e.name.find('\0') != std::string::npos || e.name.find('/') != std::string::npos) {
        throw Napi::TypeError::New(env, "bad dirent name");
      }
      memset(&e.st, 0, sizeof e.st);
      e.st.st_ino = GetU64(o, "ino");
      e.st.st_mode = static_cast<mode_t>(GetU64(o, "mode"));
      e.next = static_cast<off_t>(ToI64(o.Get("nextOffset"), "nextOffset"));
      Napi::Value ent = o.Get("entry");
      if (!ent.IsUndefined()) {
        ToEntry(ent, &e.entry);
        e.has_entry = e.entry.ino != 0;
      }
      ents.push_back(std::move(e));
    }
    Pending p = core_->Take(env, id, Bit(Op::kReaddir), "replyDirents");
    std::vector<char> buf(p.size);
    size_t pos = 0;
    uint32_t packed = 0;
    if (p.plus) {
      for (const Ent& e : ents) {
        const size_t need = PackDirentPlus(nullptr, 0, e.name, e.st, e.next,
                                           e.has_entry ? &e.entry : nullptr);
        if (pos + need > buf.size()) break;
        PackDirentPlus(buf.data() + pos, need, e.name, e.st, e.next, e.has_entry ? &e.entry : nullptr);
        pos += need;
        packed++;
      }
      core_->RawReply(p.unique, 0, buf.data(), pos);
      core_->AfterReply();
      return Napi::Number::New(env, packed);
    }
    for (const Ent& e : ents) {
      size_t need = fuse_add_direntry(p.req, nullptr, 0, e.name.c_str(), nullptr, 0);
      if (pos + need > buf.size()) break;
      fuse_add_direntry(p.req, buf.data() + pos, buf.size() - pos, e.name.c_str(), &e.st, e.next);
      pos += need;
      packed++;
    }
    fuse_reply_buf(p.req, buf.data(), pos);
    core_->AfterReply();
    return Napi::Number::New(env, packed);
  }

  Napi::Value ReplyStatfs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    Napi::Object o = ToObject(info[1], "statfs");
    struct statvfs sv;
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = GetU64(o, "bsize");
    sv.f_frsize = GetU64(o, "frsize");
    sv.f_blocks = GetU64(o, "blocks");
    sv.f_bfree = GetU64(o, "bfree");
    sv.f_bavail = GetU64(o, "bavail");
    sv.f_files = GetU64(o, "files");
    sv.f_ffree = GetU64(o, "ffree");
    sv.f_favail = sv.f_ffree;
    sv.f_namemax = GetU64(o, "namemax");
    Pending p = core_->Take(env, id, Bit(Op::kStatfs), "replyStatfs");
    return Done(env, fuse_reply_statfs(p.req, &sv));
  }

  Napi::Value ReplyXattrSize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t id = Id(info);
    uint64_t n = ToU64(info[1], "size");
    Pending p = core_->Take(env, id, kXattrSizeOps, "replyXattrSize");
    return Done(env, fuse_reply_xattr(p.req, n));
  }

  // notifyInvalInode(ino, off, len): Promise<errno> (0 = done). Runs on the worker thread.
  Napi::Value NotifyInvalInode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Job job{Job::Kind::kInvalInode};
    job.ino = ToU64(info[0], "ino");
    job.off = info.Length() > 1 ? ToI64(info[1], "off") : 0;
    job.len = info.Length() > 2 ? ToI64(info[2], "len") : 0;
    return QueueNotify(env, std::move(job));
  }

  // notifyInvalEntry(parentIno, name: Buffer): Promise<errno>.
  Napi::Value NotifyInvalEntry(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Job job{Job::Kind::kInvalEntry};
    job.ino = ToU64(info[0], "parent");
    if (info.Length() < 2 || !info[1].IsBuffer()) throw Napi::TypeError::New(env, "name must be a Buffer");
    auto b = info[1].As<Napi::Buffer<char>>();
    job.name.assign(b.Data(), b.Length());
    return QueueNotify(env, std::move(job));
  }

  Napi::Value QueueNotify(Napi::Env env, Job job) {
    auto d = Napi::Promise::Deferred::New(env);
    bool queued = false;
    {
      std::lock_guard<std::mutex> lk(core_->mu_);
      if (core_->state_ == Core::State::kRunning) {
        job.notify_id = core_->next_notify_++;
        core_->notifies_.emplace(job.notify_id, d);
        core_->jobs_.push_back(std::move(job));
        queued = true;
      }
    }
    if (queued) {
      core_->cv_.notify_one();
    } else {
      d.Resolve(Napi::Number::New(env, ENOTCONN));
    }
    return d.Promise();
  }

  Napi::Value PendingCount(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lk(core_->mu_);
    return Napi::Number::New(info.Env(), static_cast<double>(core_->pending_.size()));
  }

  Napi::Value State(const Napi::CallbackInfo& info) {
    static const char* const names[] = {"idle", "mounting", "running", "ended", "unmounted"};
    std::lock_guard<std::mutex> lk(core_->mu_);
    return Napi::String::New(info.Env(), names[static_cast<int>(core_->state_)]);
  }

  std::shared_ptr<Core> core_;
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  static std::once_flag once;
  std::call_once(once, [] { atexit(AtExit); });
  exports.Set("FuseSession", FuseSession::Init(env));
  exports.Set("libfuseVersion", Napi::Number::New(env, fuse_version()));
  return exports;
}

}  // namespace

NODE_API_MODULE(bucketgate_fuse, InitModule)
