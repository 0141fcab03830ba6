// buildyardctl's argument handling: the global/command split, each
// command's options, KEY=VALUE properties and numbers.
#include <sstream>

#include <gtest/gtest.h>

#include "ctl/args.hpp"

using namespace by::ctl;

TEST(CtlSplit, GlobalOptionsThenCommandThenItsArguments) {
    auto cl = split_command_line({"--json", "submit", "hello", "-p", "a=b", "--wait"});
    EXPECT_EQ(cl.global, (std::vector<std::string>{"--json"}));
    ASSERT_TRUE(cl.command);
    EXPECT_EQ(*cl.command, "submit");
    EXPECT_EQ(cl.arguments, (std::vector<std::string>{"hello", "-p", "a=b", "--wait"}));
}

TEST(CtlSplit, HelpAfterTheCommandBelongsToTheCommand) {
    auto cl = split_command_line({"submit", "--help"});
    EXPECT_TRUE(cl.global.empty());
    EXPECT_EQ(*cl.command, "submit");
    EXPECT_EQ(cl.arguments, (std::vector<std::string>{"--help"}));
}

TEST(CtlSplit, NoCommand) {
    auto cl = split_command_line({"--json"});
    EXPECT_FALSE(cl.command);
    EXPECT_FALSE(split_command_line({}).command);
}

TEST(CtlSplit, DoubleDashEndsGlobalOptions) {
    auto cl = split_command_line({"--json", "--", "pause", "-x"});
    EXPECT_EQ(cl.global, (std::vector<std::string>{"--json"}));
    EXPECT_EQ(*cl.command, "pause");
    EXPECT_EQ(cl.arguments, (std::vector<std::string>{"-x"}));
}

TEST(CtlProperty, SplitsAtTheFirstEquals) {
    auto kv = parse_property("a=b=c");
    ASSERT_TRUE(kv);
    EXPECT_EQ(kv->first, "a");
    EXPECT_EQ(kv->second, "b=c");
    auto empty_value = parse_property("key=");
    ASSERT_TRUE(empty_value);
    EXPECT_EQ(empty_value->second, "");
}

TEST(CtlProperty, RejectsMissingEqualsAndEmptyKey) {
    auto no_eq = parse_property("novalue");
    ASSERT_FALSE(no_eq);
    EXPECT_EQ(no_eq.error().exit_code, 2);
    EXPECT_EQ(no_eq.error().message, "invalid property 'novalue': expected KEY=VALUE");
    auto empty_key = parse_property("=x");
    ASSERT_FALSE(empty_key);
    EXPECT_EQ(empty_key.error().exit_code, 2);
    EXPECT_EQ(empty_key.error().message, "invalid property '=x': the key is empty");
}

TEST(CtlProperty, ManyWithLaterWinning) {
    auto props = parse_properties({"a=1", "b=2", "a=3"});
    ASSERT_TRUE(props);
    EXPECT_EQ(*props, (StringMap{{"a", "3"}, {"b", "2"}}));
    EXPECT_FALSE(parse_properties({"a=1", "bad"}));
    auto none = parse_properties({});
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->empty());
}

TEST(CtlNumber, AcceptsOnlyPlainDigits) {
    auto n = parse_number("42", "build id");
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 42u);
    EXPECT_EQ(*parse_number("0", "limit"), 0u);
    EXPECT_EQ(*parse_number("18446744073709551615", "limit"), UINT64_MAX);
    for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1x", "0x10", "18446744073709551616"}) {
        auto r = parse_number(bad, "build id");
        EXPECT_FALSE(r) << bad;
    }
    EXPECT_EQ(parse_number("-1", "limit").error().message,
              "invalid limit '-1': expected a non-negative number");
}

namespace {

struct SubmitParse {
    po::options_description options{"Options"};
    po::options_description hidden;
    po::positional_options_description positional;
    po::variables_map vm;
    std::ostringstream out, err;

    SubmitParse() {
        options.add_options()("property,p", po::value<std::vector<std::string>>(), "prop")(
            "wait", "wait");
        hidden.add_options()("builder", po::value<std::string>());
        positional.add("builder", 1);
    }
    std::optional<int> run(const std::vector<std::string>& args) {
        CommandHelp help{"submit", "BUILDER [-p KEY=VALUE]... [--wait]", "Submit a build."};
        return parse_command_arguments(help, args, options, &hidden, &positional, vm, out, err);
    }
};

}  // namespace

TEST(CtlCommandArgs, RepeatedPropertiesAndOperand) {
    SubmitParse p;
    EXPECT_FALSE(p.run({"hello", "-p", "a=1", "--property", "b=2", "--wait", "--json"}));
    EXPECT_EQ(p.vm["builder"].as<std::string>(), "hello");
    EXPECT_EQ(p.vm["property"].as<std::vector<std::string>>(),
              (std::vector<std::string>{"a=1", "b=2"}));
    EXPECT_TRUE(p.vm.count("wait"));
    EXPECT_TRUE(p.vm.count("json"));
    EXPECT_TRUE(p.err.str().empty());
}

TEST(CtlCommandArgs, HelpPrintsTheCommandsUsage) {
    SubmitParse p;
    auto rc = p.run({"--help"});
    ASSERT_TRUE(rc);
    EXPECT_EQ(*rc, 0);
    std::string out = p.out.str();
    EXPECT_EQ(out.rfind("Usage: buildyardctl [--json] submit BUILDER [-p KEY=VALUE]... [--wait]\n", 0),
              0u)
        << out;
    EXPECT_NE(out.find("Submit a build."), std::string::npos);
    EXPECT_NE(out.find("--property"), std::string::npos);
    EXPECT_EQ(out.find("--builder"), std::string::npos);  // hidden operand
}

TEST(CtlCommandArgs, UnknownOptionAndExtraOperandAreUsageErrors) {
    SubmitParse p;
    auto rc = p.run({"hello", "--bogus"});
    ASSERT_TRUE(rc);
    EXPECT_EQ(*rc, 2);
    EXPECT_EQ(p.err.str().rfind("buildyardctl: ", 0), 0u);
    EXPECT_NE(p.err.str().find("Try 'buildyardctl submit --help'."), std::string::npos);

    SubmitParse q;
    auto rc2 = q.run({"hello", "world"});
    ASSERT_TRUE(rc2);
    EXPECT_EQ(*rc2, 2);
}

TEST(CtlCommandArgs, CommandWithoutOperandsRejectsWords) {
    po::options_description options("Options");
    po::variables_map vm;
    std::ostringstream out, err;
    CommandHelp help{"status", "", "Show status."};
    auto rc = parse_command_arguments(help, {"extra"}, options, nullptr, nullptr, vm, out, err);
    ASSERT_TRUE(rc);
    EXPECT_EQ(*rc, 2);
    po::options_description options2("Options");
    po::variables_map vm2;
    EXPECT_FALSE(parse_command_arguments(help, {}, options2, nullptr, nullptr, vm2, out, err));
}

TEST(CtlCommandArgs, UsageErrorText) {
    std::ostringstream err;
    EXPECT_EQ(usage_error(err, "log", "missing ID"), 2);
    EXPECT_EQ(err.str(), "buildyardctl: missing ID\nTry 'buildyardctl log --help'.\n");
    std::ostringstream err2;
    usage_error(err2, "", "no command given");
    EXPECT_EQ(err2.str(), "buildyardctl: no command given\nTry 'buildyardctl --help'.\n");
}
