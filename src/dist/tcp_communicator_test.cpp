#include "dist/tcp_communicator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <thread>

namespace keel::dist {
namespace {

// `world` ranks as threads of this process, each with its own TCP communicator (as separate processes would be).
std::vector<Status> run_ranks(int world, const std::function<Status(TcpCommunicator&)>& fn,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(20000)) {
  const int port = free_port();
  std::vector<Status> status(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; r++) {
    threads.emplace_back([&, r] {
      TcpOptions o;
      o.rank = r;
      o.world = world;
      o.master_port = port;
      o.connect_timeout = std::chrono::milliseconds(20000);
      o.timeout = timeout;
      auto c = TcpCommunicator::connect(o);
      status[r] = c.ok() ? fn(**c) : c.status();
    });
  }
  for (auto& t : threads) t.join();
  return status;
}

float value(int rank, size_t i) { return 0.1f * static_cast<float>(rank + 1) + 1e-3f * static_cast<float>(i); }

TEST(TcpCommunicator, AllReduceSumsInRankOrderBitIdenticalOnEveryRank) {
  for (int world : {1, 2, 3, 4}) {
    const size_t n = 100003;
    std::vector<std::vector<float>> data(world);
    auto status = run_ranks(world, [&](TcpCommunicator& c) {
      auto& d = data[c.rank()];
      for (size_t i = 0; i < n; i++) d.push_back(value(c.rank(), i));
      return c.all_reduce_sum(d.data(), n);
    });
    for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
    for (size_t i = 0; i < n; i += 997) {
      float want = value(0, i);
      for (int r = 1; r < world; r++) want += value(r, i);
      for (int r = 0; r < world; r++) ASSERT_EQ(std::memcmp(&data[r][i], &want, sizeof(float)), 0) << world << " " << i;
    }
  }
}

TEST(TcpCommunicator, GatherBroadcastBarrierAndPointToPointBetweenAnyPair) {
  const int world = 3;
  auto status = run_ranks(world, [&](TcpCommunicator& c) -> Status {
    const int r = c.rank();
    std::vector<float> mine(5, static_cast<float>(r)), all(15);
    KEEL_RETURN_IF_ERROR(c.all_gather(mine.data(), 5, all.data()));
    for (int i = 0; i < 15; i++) EXPECT_EQ(all[i], static_cast<float>(i / 5));
    char text[16] = {};
    if (r == 2) std::strcpy(text, "from rank two");
    KEEL_RETURN_IF_ERROR(c.broadcast(text, sizeof(text), 2));
    EXPECT_STREQ(text, "from rank two");
    KEEL_RETURN_IF_ERROR(c.barrier());
    // A ring: each rank sends to the next and receives from the previous (ranks 1 and 2 talk directly).
    std::vector<float> out(3, 10.0f * r), in(3);
    KEEL_RETURN_IF_ERROR(c.send(out.data(), 3, (r + 1) % world));
    KEEL_RETURN_IF_ERROR(c.recv(in.data(), 3, (r + world - 1) % world));
    EXPECT_EQ(in[0], 10.0f * ((r + world - 1) % world));
    return Status();
  });
  for (auto& s : status) EXPECT_TRUE(s.ok()) << s.message();
}

// Every rank knows where each other rank can be reached: the master's address for rank 0, the address rank 0 saw
// a connection come from for the others (a sub-group led by that rank listens there).
TEST(TcpCommunicator, EveryRankKnowsEveryRanksAddress) {
  auto status = run_ranks(3, [&](TcpCommunicator& c) -> Status {
    for (int r = 0; r < 3; r++) EXPECT_EQ(c.address(r), "127.0.0.1") << "rank " << r << " seen from " << c.rank();
    return Status();
  });
  for (auto& s : status) EXPECT_TRUE(s.ok()) << s.message();
}

TEST(TcpCommunicator, MismatchedSizesFailInsteadOfReadingGarbage) {
  auto status = run_ranks(2, [&](TcpCommunicator& c) {
    std::vector<float> d(c.rank() == 0 ? 4 : 5, 1.0f);
    return c.all_reduce_sum(d.data(), d.size());
  });
  EXPECT_FALSE(status[0].ok());
  EXPECT_NE(status[0].message().find("out of step"), std::string::npos) << status[0].message();
}

TEST(TcpCommunicator, ARankThatExitsFailsTheOthersPromptly) {
  const auto t0 = std::chrono::steady_clock::now();
  auto status = run_ranks(3, [&](TcpCommunicator& c) -> Status {
    if (c.rank() == 1) {
      c.abort(io_error("rank 1 exits"));  // closes its sockets, as a dying process does
      return Status();
    }
    std::vector<float> d(8, 1.0f);
    Status s = c.all_reduce_sum(d.data(), d.size());
    if (s.ok()) return internal_error("the all-reduce succeeded without rank 1");
    EXPECT_NE(s.message().find("closed its connection"), std::string::npos) << s.message();
    // Rank 0 sees rank 1 go; rank 2 sees rank 0 give up (the first failure closes every link).
    if (c.rank() == 0) {
      EXPECT_NE(s.message().find("from rank 1"), std::string::npos) << s.message();
    }
    // The group stays failed; a broadcast no longer waits for anyone.
    char x = 0;
    EXPECT_FALSE(c.broadcast(&x, 1, 0).ok());
    return Status();
  });
  for (auto& s : status) EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(TcpCommunicator, ARankThatHangsTimesOutTheCollective) {
  auto status = run_ranks(
      2,
      [&](TcpCommunicator& c) -> Status {
        if (c.rank() == 1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // never joins the all-reduce
          return Status();
        }
        std::vector<float> d(8, 1.0f);
        Status s = c.all_reduce_sum(d.data(), d.size());
        EXPECT_NE(s.message().find("timed out"), std::string::npos) << s.message();
        return Status();
      },
      std::chrono::milliseconds(300));
  for (auto& s : status) EXPECT_TRUE(s.ok()) << s.message();
}

TEST(TcpCommunicator, CheckPeersSeesAClosedPeerWithoutBlocking) {
  auto status = run_ranks(2, [&](TcpCommunicator& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.check_peers());
    KEEL_RETURN_IF_ERROR(c.barrier());
    if (c.rank() == 1) {
      c.abort(io_error("bye"));
      return Status();
    }
    for (int i = 0; i < 200; i++) {
      if (!c.check_peers().ok()) return Status();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return internal_error("check_peers never saw rank 1 go");
  });
  for (auto& s : status) EXPECT_TRUE(s.ok()) << s.message();
}

TEST(TcpCommunicator, RefusesBadRanks) {
  TcpOptions o;
  o.rank = 2;
  o.world = 2;
  o.master_port = 1234;
  EXPECT_FALSE(TcpCommunicator::connect(o).ok());
  o.rank = 0;
  o.master_port = 0;
  EXPECT_FALSE(TcpCommunicator::connect(o).ok());
}

}  // namespace
}  // namespace keel::dist
