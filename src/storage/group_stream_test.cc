// GroupStorage's side of streamed snapshots: the view of a durable state (WantStateView,
// TakeStateView), a received state staged whole (DepositReceived, StageReceived) and the node
// write that carries a whole batch among the staged records (NodeDb::StageBatch).

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "storage/group_storage.h"
#include "storage/rocks_format.h"
#include "storage/storage_test_util.h"

namespace synod::storage {
namespace {

using testing::Ents;
using testing::HS;
using testing::MustOpen;
using testing::TempDir;

StateWrites Writes(uint64_t applied,
                   std::vector<std::pair<std::string, std::optional<std::string>>> d) {
  StateWrites w;
  w.data = std::move(d);
  w.applied = LogIndex(applied);
  w.meta = "meta" + std::to_string(applied);
  return w;
}

// The state keys a view holds, with their payloads.
std::map<std::string, std::string> ViewData(const GroupStorage::StateView& v) {
  std::map<std::string, std::string> out;
  const Status s = v.view->Scan(
      {{v.keys.data_begin, v.keys.data_end, [&](std::string_view k, std::string_view value) {
          Result<std::string_view> p = format::Unframe(k, value, "record");
          EXPECT_TRUE(p.ok());
          out.emplace(k.substr(v.keys.data_prefix), *p);
          return Status::Ok();
        }}});
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

TEST(GroupStreamTest, AViewIsTakenOnceTheStateWantedIsDurableAndKeepsThatMoment) {
  TempDir tmp;
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 5), HS(5)).ok());
  r->StageState(Writes(5, {{"a", "1"}, {"b", "2"}}));
  r->WantStateView(LogIndex(5));
  EXPECT_EQ(r->state_view_index(), LogIndex(0)) << "a view of a state not yet written";
  EXPECT_FALSE(r->TakeStateView().has_value());
  ASSERT_TRUE(r->Sync().ok());
  EXPECT_EQ(r->durable_state_applied(), LogIndex(5));
  EXPECT_EQ(r->state_view_index(), LogIndex(5));
  std::optional<GroupStorage::StateView> v = r->TakeStateView();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->applied, LogIndex(5));
  EXPECT_EQ(r->state_view_index(), LogIndex(0)) << "a view is handed out once";
  // Later writes do not reach the view.
  ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 6, 6), HS(6)).ok());
  r->StageState(Writes(6, {{"a", "changed"}, {"c", "3"}}));
  ASSERT_TRUE(r->Sync().ok());
  EXPECT_EQ(ViewData(*v), (std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}}));
  Result<std::optional<std::string>> applied = v->view->Get(v->keys.applied, "applied");
  ASSERT_TRUE(applied.ok() && applied->has_value());
  Result<LogIndex> index = GroupStorage::DecodeApplied(v->keys.applied, **applied);
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(*index, LogIndex(5));
}

TEST(GroupStreamTest, AViewWantedIsNotTakenWhenANewerStateRidesOnTheSameWrite) {
  TempDir tmp;
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 5), HS(5)).ok());
  r->StageState(Writes(3, {{"a", "1"}}));
  r->WantStateView(LogIndex(3));
  r->StageState(Writes(5, {{"a", "2"}}));
  ASSERT_TRUE(r->Sync().ok());
  EXPECT_EQ(r->state_view_index(), LogIndex(0)) << "the database holds the state at 5, not 3";
  // Wanted at the state as it now is: taken at once, it is durable already.
  r->WantStateView(LogIndex(5));
  EXPECT_EQ(r->state_view_index(), LogIndex(5));
  r->WantStateView(LogIndex(0));
  EXPECT_EQ(r->state_view_index(), LogIndex(0)) << "wanting none drops the view";
}

TEST(GroupStreamTest, AReceivedStateIsWrittenAfterWhatWasStagedBeforeItAndBeforeWhatFollows) {
  TempDir tmp;
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 9), HS(9)).ok());
  r->StageState(Writes(2, {{"a", "old"}, {"gone", "x"}}));
  ASSERT_TRUE(r->Sync().ok());
  // A received state replaces everything: built as the receiving thread builds it.
  const StateKeys k = GroupStorage::KeysOf(GroupStorage::kStandaloneGroup, r->span());
  ReceivedState rs;
  ASSERT_TRUE(rs.batch.DeleteRange(k.data_begin, k.data_end).ok());
  const std::string ka = GroupStorage::SlotDataKey("a");
  const std::string kb = GroupStorage::SlotDataKey("b");
  ASSERT_TRUE(rs.batch.Put(ka, format::FrameBytes(ka, "streamed")).ok());
  ASSERT_TRUE(rs.batch.Put(kb, format::FrameBytes(kb, "streamed b")).ok());
  rs.applied = LogIndex(7);
  rs.meta = "m7";
  r->StageState(Writes(3, {{"a", "staged before"}}));
  r->DepositReceived(11, std::move(rs));
  EXPECT_EQ(r->StageReceived(12).code(), Code::kNotFound);
  ASSERT_TRUE(r->StageReceived(11).ok());
  EXPECT_EQ(r->StageReceived(11).code(), Code::kNotFound) << "a deposit is staged once";
  EXPECT_EQ(r->state_applied(), LogIndex(7));
  r->StageState(Writes(8, {{"b", "staged after"}}));
  ASSERT_TRUE(r->Sync().ok());
  EXPECT_EQ(r->durable_state_applied(), LogIndex(8));
  std::map<std::string, std::string> data;
  ASSERT_TRUE(r->ForEachState(
                   [&](std::string_view key, std::string_view v) {
                     data.emplace(key, v);
                     return Status::Ok();
                   },
                   [](uint64_t, std::string_view) { return Status::Ok(); })
                  .ok());
  EXPECT_EQ(data, (std::map<std::string, std::string>{{"a", "streamed"}, {"b", "staged after"}}));
}

}  // namespace
}  // namespace synod::storage
