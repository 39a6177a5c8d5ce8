// The transport benchmark's Boost.Beast side: an asynchronous server (Asio, a strand per connection, THREADS
// threads) serving GET /stream?tokens=N as SSE over chunked transfer: every token the Ticker hands over is posted
// to its connection's strand and written as soon as the previous write finished. GET /health answers "ok". Limits
// as keel's: header 32 KiB, body 32 MiB (parser limits), one 10 s deadline for reading a request.
//   beast_sse PORT [STEP_MS] [THREADS]
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ticker.h"

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Ticker* ticker) : stream_(std::move(socket)), ticker_(ticker) {}
  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(32 << 10);
    parser_->body_limit(32 << 20);
    stream_.expires_after(std::chrono::seconds(10));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) return close();
    stream_.expires_never();
    const auto& req = parser_->get();
    const std::string target(req.target());
    if (target.rfind("/health", 0) == 0) {
      pending_ = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
      close_after_ = !req.keep_alive();
      read_after_ = !close_after_;
      return write();
    }
    int tokens = 100;
    if (size_t at = target.find("tokens="); at != std::string::npos) tokens = std::atoi(target.c_str() + at + 7);
    pending_ = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
               "Transfer-Encoding: chunked\r\n\r\n";
    close_after_ = false;
    // The ticker's entry holds the session until the stream's last token or a failed write removes it.
    auto executor = stream_.get_executor();
    id_ = ticker_->add(tokens, [self = shared_from_this(), executor](int64_t ns, bool last) {
      net::post(executor, [self, ns, last] { self->token(ns, last); });
    });
    write();
  }

  void token(int64_t ns, bool last) {
    std::string event = "data: " + std::to_string(ns) + "\n\n";
    if (last) event += "data: [DONE]\n\n";
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", event.size());
    pending_ += size + event + "\r\n";
    if (last) {
      pending_ += "0\r\n\r\n";
      id_ = 0;
      read_after_ = true;
    }
    if (!writing_) write();
  }

  void write() {
    if (pending_.empty()) return;
    writing_ = true;
    out_.swap(pending_);
    pending_.clear();
    stream_.expires_after(std::chrono::seconds(30));
    net::async_write(stream_, net::buffer(out_), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      self->out_.clear();
      if (ec) return self->close();
      if (!self->pending_.empty()) return self->write();
      if (self->close_after_) return self->close();
      if (self->read_after_) {
        self->read_after_ = false;
        self->read();
      }
    });
  }

  void close() {
    if (id_ != 0) ticker_->remove(id_);
    id_ = 0;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  }

  beast::tcp_stream stream_;
  Ticker* ticker_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string pending_, out_;
  bool writing_ = false, close_after_ = false, read_after_ = false;
  uint64_t id_ = 0;
};

void accept(tcp::acceptor& acceptor, net::io_context& ioc, Ticker* ticker) {
  acceptor.async_accept(net::make_strand(ioc), [&acceptor, &ioc, ticker](beast::error_code ec, tcp::socket socket) {
    if (!ec) {
      socket.set_option(tcp::no_delay(true));
      std::make_shared<Session>(std::move(socket), ticker)->start();
    }
    accept(acceptor, ioc, ticker);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 8091;
  Ticker ticker(std::chrono::milliseconds(argc > 2 ? std::atoi(argv[2]) : 20));
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  net::io_context ioc(threads);
  tcp::acceptor acceptor(ioc);
  tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  acceptor.open(endpoint.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(1024);
  accept(acceptor, ioc, &ticker);
  std::fprintf(stderr, "beast_sse: listening on 127.0.0.1:%d (%d threads)\n", port, threads);
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; i++) pool.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
}
