// What a master makes of a pending_channel payload (pg_notice.hpp): the
// queueing master and builder, and the build's row when it came along;
// anything else in a row is left out, never trusted.
#include <gtest/gtest.h>

#include "master/pg_notice.hpp"

using namespace by::master;

namespace {

// A row as insert_build's json_build_array sends it.
const char* row = R"([17, 0, "hello", "", "pending", "", -1, "{\"k\":\"v\\nw\"}", "{\"k\":\"v\\nw\"}", )"
                  R"(1700000000000001, 0, 0, 0, 0, "{}"])";

}  // namespace

TEST(PgNotice, MasterAndBuilderAlone) {
    const auto n = parse_pending_notice("m1\nhello");
    ASSERT_TRUE(n);
    EXPECT_EQ(n->master, "m1");
    EXPECT_EQ(n->builder, "hello");
    EXPECT_FALSE(n->build);
}

TEST(PgNotice, TheRowIsThePendingBuild) {
    const auto n = parse_pending_notice(std::string("m1\nhello\n") + row);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->builder, "hello");
    ASSERT_TRUE(n->build);
    const Build& b = *n->build;
    EXPECT_EQ(b.id, 17u);
    EXPECT_EQ(b.request_id, 17u) << "a first build is its own request";
    EXPECT_EQ(b.builder, "hello");
    EXPECT_EQ(b.worker, "");
    EXPECT_EQ(b.state, BuildState::pending);
    EXPECT_EQ(b.exit_status, -1);
    EXPECT_EQ(b.requested, (std::map<std::string, std::string>{{"k", "v\nw"}}));
    EXPECT_EQ(b.properties, b.requested);
    EXPECT_EQ(b.submitted_at, 1700000000000001u);
    EXPECT_EQ(b.usage, by::BuildUsage{});
}

TEST(PgNotice, ARerunKeepsItsRequest) {
    std::string rerun = row;
    rerun.replace(rerun.find("17, 0,"), 6, "18, 9,");
    const auto n = parse_pending_notice("m1\nhello\n" + rerun);
    ASSERT_TRUE(n && n->build);
    EXPECT_EQ(n->build->id, 18u);
    EXPECT_EQ(n->build->request_id, 9u);
}

TEST(PgNotice, ARowThatIsNotAPendingBuildOfTheBuilderIsLeftOut) {
    const std::string good = row;
    auto with = [&](const std::string& from, const std::string& to) {
        std::string r = good;
        const size_t at = r.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return r.replace(at, from.size(), to);
    };
    for (const std::string& bad : {
             with("\"pending\"", "\"running\""),      // taken already
             with("[17,", "[0,"),                     // no id
             with("\"hello\"", "\"other\""),          // another builder
             with("\"pending\"", "7"),                // a number for a text
             with("1700000000000001", "\"1700000000000001\""),  // a text for a number
             with(", \"{}\"]", "]"),                  // a column short
             with(", \"{}\"]", ", \"{}\", 1]"),       // a column more
             with("1700000000000001", "1.5"),         // not an integer
             with("1700000000000001", "null"),
             std::string("{\"id\": 17}"),
             std::string("[17, \"hello\""),          // cut short
             std::string("\xff\xfe"),
             std::string(),
         }) {
        const auto n = parse_pending_notice("m1\nhello\n" + bad);
        ASSERT_TRUE(n) << bad;
        EXPECT_EQ(n->builder, "hello") << bad;
        EXPECT_FALSE(n->build) << bad;
    }
}

TEST(PgNotice, APayloadWithoutABuilderIsNothing) {
    EXPECT_FALSE(parse_pending_notice(""));
    EXPECT_FALSE(parse_pending_notice("m1"));
    EXPECT_FALSE(parse_pending_notice("m1\n"));
    EXPECT_FALSE(parse_pending_notice(std::string("m1\n\n") + row));
}
