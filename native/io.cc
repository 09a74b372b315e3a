// Small I/O helpers Node does not offer. Built as build/Release/bucketgate_io.node.
//
// sendFile(sockFd, head, fileFd, offset, length, tailLen, callback)
//   Sends one reply record on a connected, non-blocking stream socket: `head` (a Buffer), then
//   `length` bytes of the file `fileFd` from `offset` with sendfile(2) (the kernel hands the
//   page-cache pages to the socket: no copy through user memory), then `tailLen` (0..3) zero
//   bytes. It runs on the libuv thread pool and never waits for the socket: when the socket's
//   send buffer is full it stops and reports how far it got, and the caller sends the rest
//   through its normal (event-loop driven) path. Both descriptors are dup(2)'ed when the call is
//   made, so the caller may close or reuse its own descriptors right after the call returns.
//   callback(errno, sent, eof): errno 0 or the error of send/sendfile (EAGAIN is not an error:
//   sent < total then); sent = bytes of head + data + tail written; eof = the file ended before
//   `length` bytes were sent (it was truncated meanwhile).
//
// sendFileNow(sockFd, head, fileFd, offset, length, tailLen)
//   The same send, done at once on the calling (JavaScript) thread, but only when every page of
//   the file range is in the page cache (checked with cachestat(2), Linux 6.5+), so that it cannot
//   wait for the disk (a page that another reader is bringing in at that moment counts as
//   cached: the send would wait for that one read): then sendfile(2) only hands cached pages to
//   a non-blocking socket. Returns
//   [errno, sent, eof] as the callback of sendFile would, or undefined when the range is not all
//   cached or cachestat is unavailable (the caller then uses sendFile). A round trip through the
//   thread pool costs more than the send of a cached 1 MiB range on some virtual machines.
//
// alignedBuffer(size)
//   A Buffer of `size` bytes whose memory starts on a 2 MiB boundary, marked MADV_HUGEPAGE (where
//   transparent huge pages are enabled "madvise", the kernel then backs it with 2 MiB pages: a few
//   page faults instead of one per 4 KiB on first use). Page alignment also makes it usable for
//   O_DIRECT writes. Freed when the Buffer is collected.
#include <napi.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>
#include <vector>

#ifndef __NR_cachestat
#define __NR_cachestat 451  // the same number on every architecture (added in Linux 6.5)
#endif

namespace {

struct CacheStatRange {
  uint64_t off;
  uint64_t len;
};
struct CacheStat {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

/** cachestat(2) failed with ENOSYS once: the kernel has no such call, stop asking. */
bool cachestatMissing = false;

/** Every page of [offset, offset+length) of fd is in the page cache (false when unknown). */
bool AllCached(int fd, int64_t offset, int64_t length) {
  if (cachestatMissing || length <= 0) return !cachestatMissing;
  const long page = sysconf(_SC_PAGESIZE);
  const int64_t first = offset / page;
  const int64_t last = (offset + length - 1) / page;
  CacheStatRange range{static_cast<uint64_t>(first * page), static_cast<uint64_t>((last - first + 1) * page)};
  CacheStat cs{};
  if (syscall(__NR_cachestat, fd, &range, &cs, 0) != 0) {
    if (errno == ENOSYS) cachestatMissing = true;
    return false;
  }
  return cs.nr_cache >= static_cast<uint64_t>(last - first + 1);
}

/** The send of sendFile: head, file range, zero tail; stops without waiting when the socket is full. */
struct Sender {
  int sock;
  int file;
  int err = 0;
  int64_t sent = 0;
  bool eof = false;

  bool SendAll(const uint8_t* buf, size_t len, int flags) {
    size_t done = 0;
    while (done < len) {
      const ssize_t n = send(sock, buf + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT | flags);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
        return false;
      }
      done += static_cast<size_t>(n);
      sent += n;
    }
    return true;
  }

  void Run(const uint8_t* head, size_t headLen, int64_t offset, int64_t length, uint32_t tail) {
    // Head, with MSG_MORE so that it leaves in the same segment as the first data bytes.
    if (!SendAll(head, headLen, (length > 0 || tail > 0) ? MSG_MORE : 0)) return;
    off_t off = static_cast<off_t>(offset);
    int64_t left = length;
    while (left > 0) {
      const size_t chunk = static_cast<size_t>(std::min<int64_t>(left, int64_t{1} << 30));
      const ssize_t n = sendfile(sock, file, &off, chunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
        return;
      }
      if (n == 0) {
        eof = true;
        return;
      }
      left -= n;
      sent += n;
    }
    static const uint8_t zeros[4] = {0, 0, 0, 0};
    SendAll(zeros, tail, 0);
  }
};

class SendFileWork : public Napi::AsyncWorker {
 public:
  SendFileWork(Napi::Function cb, int sock, std::vector<uint8_t> head, int file, int64_t offset,
               int64_t length, uint32_t tail)
      : Napi::AsyncWorker(cb, "bucketgate.sendFile"),
        sock_(sock),
        file_(file),
        head_(std::move(head)),
        offset_(offset),
        length_(length),
        tail_(tail) {}

  ~SendFileWork() override {
    if (sock_ >= 0) close(sock_);
    if (file_ >= 0) close(file_);
  }

  void Execute() override {
    Sender s{sock_, file_};
    s.Run(head_.data(), head_.size(), offset_, length_, tail_);
    err_ = s.err;
    sent_ = s.sent;
    eof_ = s.eof;
  }

  void OnOK() override {
    Napi::Env env = Env();
    Callback().Call({Napi::Number::New(env, err_), Napi::Number::New(env, static_cast<double>(sent_)),
                     Napi::Boolean::New(env, eof_)});
  }

 private:
  int sock_;
  int file_;
  std::vector<uint8_t> head_;
  int64_t offset_;
  int64_t length_;
  uint32_t tail_;
  int err_ = 0;
  int64_t sent_ = 0;
  bool eof_ = false;
};

int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* what, int64_t max) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0) || v > static_cast<double>(max) || v != static_cast<double>(static_cast<int64_t>(v)))
    throw Napi::RangeError::New(info.Env(), std::string(what) + " out of range");
  return static_cast<int64_t>(v);
}

/** The arguments sendFile and sendFileNow share: (sockFd, head, fileFd, offset, length, tailLen). */
struct SendArgs {
  int sock;
  int file;
  int64_t offset;
  int64_t length;
  uint32_t tail;
  Napi::Buffer<uint8_t> head;
};

SendArgs ParseSendArgs(const Napi::CallbackInfo& info) {
  return SendArgs{static_cast<int>(IntArg(info, 0, "sockFd", INT32_MAX)),
                  static_cast<int>(IntArg(info, 2, "fileFd", INT32_MAX)),
                  IntArg(info, 3, "offset", int64_t{1} << 53),
                  IntArg(info, 4, "length", int64_t{1} << 40),
                  static_cast<uint32_t>(IntArg(info, 5, "tailLen", 3)),
                  info[1].As<Napi::Buffer<uint8_t>>()};
}

Napi::Value SendFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[1].IsBuffer() || !info[6].IsFunction())
    throw Napi::TypeError::New(env, "sendFile(sockFd, head, fileFd, offset, length, tailLen, callback)");
  const SendArgs a = ParseSendArgs(info);
  std::vector<uint8_t> head(a.head.Data(), a.head.Data() + a.head.Length());
  const int sock = dup(a.sock);
  if (sock < 0) throw Napi::Error::New(env, std::string("dup of the socket failed: ") + strerror(errno));
  const int file = dup(a.file);
  if (file < 0) {
    const int e = errno;
    close(sock);
    throw Napi::Error::New(env, std::string("dup of the file failed: ") + strerror(e));
  }
  auto* work = new SendFileWork(info[6].As<Napi::Function>(), sock, std::move(head), file, a.offset, a.length, a.tail);
  work->Queue();
  return env.Undefined();
}

Napi::Value SendFileNow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[1].IsBuffer())
    throw Napi::TypeError::New(env, "sendFileNow(sockFd, head, fileFd, offset, length, tailLen)");
  const SendArgs a = ParseSendArgs(info);
  if (!AllCached(a.file, a.offset, a.length)) return env.Undefined();
  Sender s{a.sock, a.file};
  s.Run(a.head.Data(), a.head.Length(), a.offset, a.length, a.tail);
  Napi::Array r = Napi::Array::New(env, 3);
  r.Set(uint32_t{0}, Napi::Number::New(env, s.err));
  r.Set(uint32_t{1}, Napi::Number::New(env, static_cast<double>(s.sent)));
  r.Set(uint32_t{2}, Napi::Boolean::New(env, s.eof));
  return r;
}

Napi::Value AlignedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "alignedBuffer(size)");
  const size_t size = static_cast<size_t>(IntArg(info, 0, "size", int64_t{1} << 32));
  constexpr size_t kAlign = size_t{2} << 20;
  const size_t rounded = (std::max<size_t>(size, 1) + kAlign - 1) / kAlign * kAlign;
  void* mem = nullptr;
  if (posix_memalign(&mem, kAlign, rounded) != 0 || mem == nullptr)
    throw Napi::Error::New(env, "alignedBuffer: out of memory");
  madvise(mem, rounded, MADV_HUGEPAGE);  // advice only: fine if it fails
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(rounded));
  return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(mem), size,
                                    [rounded](Napi::Env e, uint8_t* data) {
                                      free(data);
                                      Napi::MemoryManagement::AdjustExternalMemory(e, -static_cast<int64_t>(rounded));
                                    });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sendFile", Napi::Function::New(env, SendFile, "sendFile"));
  exports.Set("sendFileNow", Napi::Function::New(env, SendFileNow, "sendFileNow"));
  exports.Set("alignedBuffer", Napi::Function::New(env, AlignedBuffer, "alignedBuffer"));
  return exports;
}

}  // namespace

NODE_API_MODULE(bucketgate_io, Init)
