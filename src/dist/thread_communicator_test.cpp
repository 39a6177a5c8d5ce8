#include "dist/thread_communicator.h"

#include <gtest/gtest.h>

#include <cstring>

namespace keel::dist {
namespace {

float value(int rank, size_t i) { return 0.1f * static_cast<float>(rank + 1) + 1e-3f * static_cast<float>(i); }

TEST(ThreadCommunicator, AllReduceSumsEveryElementOverRanksInRankOrder) {
  for (int R : {1, 2, 3, 4}) {
    ThreadGroup group(R);
    const size_t n = 1001;  // not a multiple of any rank count: uneven chunks
    std::vector<std::vector<float>> data(R);
    auto status = group.run([&](Communicator& c) {
      EXPECT_EQ(c.size(), R);
      auto& d = data[c.rank()];
      for (size_t i = 0; i < n; i++) d.push_back(value(c.rank(), i));
      return c.all_reduce_sum(d.data(), n);
    });
    for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
    for (size_t i = 0; i < n; i++) {
      float want = value(0, i);
      for (int r = 1; r < R; r++) want += value(r, i);
      for (int r = 0; r < R; r++) ASSERT_EQ(std::memcmp(&data[r][i], &want, sizeof(float)), 0) << "R=" << R << " i=" << i;
    }
  }
}

TEST(ThreadCommunicator, RepeatedCollectivesStayInStep) {
  ThreadGroup group(4);
  std::vector<float> totals(4);
  auto status = group.run([&](Communicator& c) {
    float acc = 0;
    for (int step = 0; step < 500; step++) {
      std::vector<float> d(1 + step % 7, static_cast<float>(c.rank() + step));
      KEEL_RETURN_IF_ERROR(c.all_reduce_sum(d.data(), d.size()));
      acc += d.back();
      std::vector<float> all(4);
      const float mine = static_cast<float>(c.rank() * 10 + step);
      KEEL_RETURN_IF_ERROR(c.all_gather(&mine, 1, all.data()));
      for (int r = 0; r < 4; r++)
        if (all[r] != static_cast<float>(r * 10 + step)) return internal_error("step {}: gather slot {} wrong", step, r);
      KEEL_RETURN_IF_ERROR(c.barrier());
    }
    totals[c.rank()] = acc;
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  for (int r = 1; r < 4; r++) EXPECT_EQ(totals[r], totals[0]);
}

TEST(ThreadCommunicator, AllGatherPlacesEachRanksBlockAtItsRank) {
  ThreadGroup group(3);
  std::vector<std::vector<float>> recv(3, std::vector<float>(3 * 5));
  auto status = group.run([&](Communicator& c) {
    std::vector<float> send(5);
    for (int i = 0; i < 5; i++) send[i] = static_cast<float>(c.rank() * 100 + i);
    return c.all_gather(send.data(), 5, recv[c.rank()].data());
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  for (int me = 0; me < 3; me++)
    for (int r = 0; r < 3; r++)
      for (int i = 0; i < 5; i++) EXPECT_EQ(recv[me][r * 5 + i], static_cast<float>(r * 100 + i));
}

TEST(ThreadCommunicator, MismatchedSizesFailOnEveryRankInsteadOfHanging) {
  ThreadGroup group(2);
  auto status = group.run([&](Communicator& c) {
    std::vector<float> d(8, 1.0f);
    return c.all_reduce_sum(d.data(), c.rank() == 0 ? 8 : 4);
  });
  for (auto& s : status) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("all_reduce_sum: rank"), std::string::npos) << s.message();
  }
  // The group is still usable afterwards.
  status = group.run([&](Communicator& c) {
    float x = 1.0f;
    KEEL_RETURN_IF_ERROR(c.all_reduce_sum(&x, 1));
    return x == 2.0f ? Status() : internal_error("got {}", x);
  });
  for (auto& s : status) EXPECT_TRUE(s.ok()) << s.message();
}

TEST(ThreadCommunicator, BroadcastCopiesTheRootsBytesToEveryRank) {
  ThreadGroup group(3);
  std::vector<std::string> got(3);
  auto status = group.run([&](Communicator& c) {
    char buf[6] = {};
    if (c.rank() == 1) std::memcpy(buf, "plan1", 6);
    KEEL_RETURN_IF_ERROR(c.broadcast(buf, sizeof buf, 1));
    got[c.rank()] = buf;
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  for (auto& g : got) EXPECT_EQ(g, "plan1");
}

TEST(ThreadCommunicator, SendRecvDeliversInOrderAndChecksSizes) {
  ThreadGroup group(2);
  std::vector<float> first(3), second(2);
  Status size_error;
  auto status = group.run([&](Communicator& c) -> Status {
    if (c.rank() == 0) {
      const float a[3] = {1, 2, 3}, b[2] = {4, 5}, d[4] = {6, 7, 8, 9};
      KEEL_RETURN_IF_ERROR(c.send(a, 3, 1));
      KEEL_RETURN_IF_ERROR(c.send(b, 2, 1));
      return c.send(d, 4, 1);
    }
    KEEL_RETURN_IF_ERROR(c.recv(first.data(), 3, 0));
    KEEL_RETURN_IF_ERROR(c.recv(second.data(), 2, 0));
    float wrong[3];
    size_error = c.recv(wrong, 3, 0);  // 4 were sent
    return Status();
  });
  for (auto& s : status) ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(first, (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(second, (std::vector<float>{4, 5}));
  EXPECT_FALSE(size_error.ok());
  EXPECT_NE(size_error.message().find("expected 3 floats from rank 0, got 4"), std::string::npos) << size_error.message();
  // A rank cannot address itself or a rank outside the group.
  float x = 0;
  EXPECT_FALSE(group.rank(0).send(&x, 1, 0).ok());
  EXPECT_FALSE(group.rank(0).recv(&x, 1, 2).ok());
}

}  // namespace
}  // namespace keel::dist
