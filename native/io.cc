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
#include <napi.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <cstdint>
#include <string>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <vector>

namespace {

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
    // Head, with MSG_MORE so that it leaves in the same segment as the first data bytes.
    if (!SendAll(head_.data(), head_.size(), (length_ > 0 || tail_ > 0) ? MSG_MORE : 0)) return;
    off_t off = static_cast<off_t>(offset_);
    int64_t left = length_;
    while (left > 0) {
      const size_t chunk = static_cast<size_t>(std::min<int64_t>(left, int64_t{1} << 30));
      const ssize_t n = sendfile(sock_, file_, &off, chunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) err_ = errno;
        return;
      }
      if (n == 0) {
        eof_ = true;
        return;
      }
      left -= n;
      sent_ += n;
    }
    static const uint8_t zeros[4] = {0, 0, 0, 0};
    SendAll(zeros, tail_, 0);
  }

  /** send() all of buf without waiting; false when the socket is full (EAGAIN) or failed. */
  bool SendAll(const uint8_t* buf, size_t len, int flags) {
    size_t done = 0;
    while (done < len) {
      const ssize_t n = send(sock_, buf + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT | flags);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) err_ = errno;
        return false;
      }
      done += static_cast<size_t>(n);
      sent_ += n;
    }
    return true;
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

Napi::Value SendFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[1].IsBuffer() || !info[6].IsFunction())
    throw Napi::TypeError::New(env, "sendFile(sockFd, head, fileFd, offset, length, tailLen, callback)");
  const int sockArg = static_cast<int>(IntArg(info, 0, "sockFd", INT32_MAX));
  const int fileArg = static_cast<int>(IntArg(info, 2, "fileFd", INT32_MAX));
  const int64_t offset = IntArg(info, 3, "offset", int64_t{1} << 53);
  const int64_t length = IntArg(info, 4, "length", int64_t{1} << 40);
  const uint32_t tail = static_cast<uint32_t>(IntArg(info, 5, "tailLen", 3));
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<uint8_t> head(buf.Data(), buf.Data() + buf.Length());
  const int sock = dup(sockArg);
  if (sock < 0) throw Napi::Error::New(env, std::string("dup of the socket failed: ") + strerror(errno));
  const int file = dup(fileArg);
  if (file < 0) {
    const int e = errno;
    close(sock);
    throw Napi::Error::New(env, std::string("dup of the file failed: ") + strerror(e));
  }
  auto* work = new SendFileWork(info[6].As<Napi::Function>(), sock, std::move(head), file, offset, length, tail);
  work->Queue();
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sendFile", Napi::Function::New(env, SendFile, "sendFile"));
  return exports;
}

}  // namespace

NODE_API_MODULE(bucketgate_io, Init)
