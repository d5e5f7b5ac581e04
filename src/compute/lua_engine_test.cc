// LuaEngine: the sandbox, the redis.* functions, conversions both ways, errors, pausing,
// killing and the memory limit. The replies checked here were read off Debian's redis-server
// 7.0 (tests/e2e/scripting_test.cc compares them byte for byte on a live server too).
#include "compute/lua_engine.h"

#include <gtest/gtest.h>

#include <map>

namespace synod::compute {
namespace {

// A fake keyspace: GET/SET/INCR over a map, errors as Redis's.
class FakeCalls : public ScriptCalls {
 public:
  kv::Reply Call(std::vector<std::string>& argv) override {
    calls.push_back(argv);
    std::string name = argv[0];
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "get" && argv.size() == 2) {
      auto it = data.find(argv[1]);
      return it == data.end() ? kv::Reply::Nil() : kv::Reply::Bulk(it->second);
    }
    if (name == "set" && argv.size() == 3) {
      data[argv[1]] = argv[2];
      return kv::Reply::Ok();
    }
    if (name == "incr" && argv.size() == 2) {
      int64_t v = 0;
      auto it = data.find(argv[1]);
      if (it != data.end()) {
        try {
          v = std::stoll(it->second);
        } catch (...) {
          return kv::Reply::Err("ERR value is not an integer or out of range");
        }
      }
      data[argv[1]] = std::to_string(++v);
      return kv::Reply::Int(v);
    }
    if (name == "mget") {
      std::vector<kv::Reply> out;
      for (size_t i = 1; i < argv.size(); ++i) {
        auto it = data.find(argv[i]);
        out.push_back(it == data.end() ? kv::Reply::Nil() : kv::Reply::Bulk(it->second));
      }
      return kv::Reply::Array(std::move(out));
    }
    return kv::Reply::Err("ERR Unknown Redis command called from script");
  }
  void Log(int level, std::string_view message) override {
    logs.emplace_back(level, std::string(message));
  }
  std::map<std::string, std::string> data;
  std::vector<std::vector<std::string>> calls;
  std::vector<std::pair<int, std::string>> logs;
};

// A compact text of a reply, for comparisons.
std::string Show(const kv::Reply& r) {
  const std::string v = r.value.value_or("");
  switch (r.type) {
    case kv::ReplyType::kStatus:
      return "+" + v;
    case kv::ReplyType::kError:
      return "-" + v;
    case kv::ReplyType::kInteger:
      return ":" + std::to_string(r.number);
    case kv::ReplyType::kBulk:
      return "$" + v;
    case kv::ReplyType::kNull:
      return "nil";
    case kv::ReplyType::kBool:
      return r.number ? "#t" : "#f";
    case kv::ReplyType::kDouble:
      return "," + v;
    case kv::ReplyType::kBigNumber:
      return "(" + v;
    case kv::ReplyType::kVerbatim:
      return "=" + v;
    case kv::ReplyType::kArray:
    case kv::ReplyType::kMap:
    case kv::ReplyType::kSet: {
      std::string out = r.type == kv::ReplyType::kArray ? "["
                        : r.type == kv::ReplyType::kMap ? "%["
                                                        : "~[";
      for (size_t i = 0; i < r.replies.size(); ++i) {
        if (i > 0) out += " ";
        out += Show(r.replies[i]);
      }
      return out + "]";
    }
    default:
      return "?";
  }
}

class LuaEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = LuaEngine::Create();
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine = std::move(e).value();
  }

  // Runs `body` to the end with KEYS and ARGV; the reply as Show prints it.
  std::string Eval(const std::string& body, std::vector<std::string> keys = {},
                   std::vector<std::string> args = {}, int protocol = 2) {
    auto sha = engine->Load(body);
    if (!sha.ok()) return "-" + std::string(sha.status().message());
    LuaEngine::RunOptions opts;
    opts.caller_protocol = protocol;
    auto run = engine->Start(*sha, std::move(keys), std::move(args), &calls, opts);
    while (run->Resume() == LuaRun::State::kPaused) {
    }
    return Show(run->result());
  }

  std::string Sha(const std::string& body) { return Sha1Hex(body); }

  std::unique_ptr<LuaEngine> engine;
  FakeCalls calls;
};

TEST_F(LuaEngineTest, ReturnValuesConvertAsRedis) {
  EXPECT_EQ(Eval("return 1"), ":1");
  EXPECT_EQ(Eval("return {1,2,{3,'x'},nil,5}"), "[:1 :2 [:3 $x]]");
  EXPECT_EQ(Eval("return true"), ":1");
  EXPECT_EQ(Eval("return false"), "nil");
  EXPECT_EQ(Eval("return 3.99"), ":3");
  EXPECT_EQ(Eval("return -0.5"), ":0");
  EXPECT_EQ(Eval("return 1e20"), ":-9223372036854775808");
  EXPECT_EQ(Eval("return 0/0"), ":-9223372036854775808");
  EXPECT_EQ(Eval("return {ok='fine'}"), "+fine");
  EXPECT_EQ(Eval("return {err='My Error'}"), "-My Error");
  EXPECT_EQ(Eval("return {ok=1}"), "[]");
  EXPECT_EQ(Eval("return {ok='x', err='y'}"), "-y");
  EXPECT_EQ(Eval("return {err={}}"), "[]");
  EXPECT_EQ(Eval("return nil"), "nil");
  EXPECT_EQ(Eval("return {}"), "[]");
  EXPECT_EQ(Eval("return {'a', false, 'b'}"), "[$a nil $b]");
  EXPECT_EQ(Eval("return {1,{err='inner'},3}"), "[:1 -inner :3]");
  EXPECT_EQ(Eval("return redis.status_reply('a\\r\\nb')"), "+a  b");
  EXPECT_EQ(Eval("return {double=3.14}"), ",3.1400000000000001");
  EXPECT_EQ(Eval("return {double=1/0}"), ",inf");
  EXPECT_EQ(Eval("return {map={a=1}}"), "%[$a :1]");
  EXPECT_EQ(Eval("return {set={a=true}}"), "~[$a]");
  EXPECT_EQ(Eval("return {big_number='123'}"), "(123");
  EXPECT_EQ(Eval("return {big_number='12\\r\\n3'}"), "$12  3");
  EXPECT_EQ(Eval("return {verbatim_string={format='txt',string='hi'}}"), "=txt:hi");
  EXPECT_EQ(Eval("return {double='abc'}"), "[]");
  EXPECT_EQ(Eval("return KEYS[1]..ARGV[1]", {"k"}, {"a"}), "$ka");
  EXPECT_EQ(Eval("KEYS[1] = 'x' return KEYS[1]", {"a"}), "$x");
  EXPECT_EQ(Eval("return #KEYS"), ":0");
  // After redis.setresp(3), booleans are RESP3's.
  EXPECT_EQ(Eval("redis.setresp(3) return true"), "#t");
  EXPECT_EQ(Eval("redis.setresp(3) return false"), "#f");
}

TEST_F(LuaEngineTest, ErrorsCarryWhereTheyHappened) {
  EXPECT_EQ(Eval("error('boom')"),
            "-ERR user_script:1: boom script: " + Sha("error('boom')") + ", on @user_script:1.");
  EXPECT_EQ(Eval("error({err='TABLEERR x'})"),
            "-TABLEERR x script: " + Sha("error({err='TABLEERR x'})") + ", on @user_script:1.");
  EXPECT_EQ(Eval("error(nil)"), "-ERR nil script: " + Sha("error(nil)") + ", on @user_script:1.");
  EXPECT_EQ(Eval("error(123)"),
            "-ERR user_script:1: 123 script: " + Sha("error(123)") + ", on @user_script:1.");
  // Redis 7.0 crashes on this one; here it is an error reply.
  EXPECT_EQ(Eval("error({})"), "-ERR the script raised an error without a message");
  const std::string lines = "local x = 1\nlocal r = redis.call('incr', KEYS[1])\nreturn r";
  calls.data["s"] = "abc";
  EXPECT_EQ(Eval(lines, {"s"}), "-ERR value is not an integer or out of range script: " +
                                    Sha(lines) + ", on @user_script:2.");
  // A tail call leaves no frame of the script in LuaJIT: line 1 stands in (Redis says 2).
  const std::string tail = "local x = 1\nreturn redis.call('incr', KEYS[1])";
  EXPECT_EQ(Eval(tail, {"s"}), "-ERR value is not an integer or out of range script: " + Sha(tail) +
                                   ", on @user_script:1.");
  EXPECT_EQ(Eval("return redis.pcall('incr', KEYS[1])", {"s"}),
            "-ERR value is not an integer or out of range");
  EXPECT_EQ(Eval("return redis.pcall('incr','s')['err']"),
            "$ERR value is not an integer or out of range");
  EXPECT_EQ(Eval("local ok, e = pcall(function() redis.call('nosuch') end) return e"),
            "$ERR Unknown Redis command called from script");
  EXPECT_EQ(Eval("local ok, e = pcall(function() error('x') end) return e"), "$user_script:1: x");
  EXPECT_EQ(Eval("return redis.call()"),
            "-ERR Please specify at least one argument for this redis lib call script: " +
                Sha("return redis.call()") + ", on @user_script:1.");
  EXPECT_EQ(Eval("return redis.call('set','a',true)"),
            "-ERR Lua redis lib command arguments must be strings or integers script: " +
                Sha("return redis.call('set','a',true)") + ", on @user_script:1.");
  EXPECT_EQ(Eval("return redis.call('set','a',1.5)"), "+OK");
  EXPECT_EQ(calls.data["a"], "1.5");
  EXPECT_EQ(Eval("return 'x"),
            "-ERR Error compiling script (new function): user_script:1: unfinished string near "
            "'<eof>'");
}

TEST_F(LuaEngineTest, TheRedisTable) {
  EXPECT_EQ(Eval("return redis.error_reply('My Error')"), "-My Error");
  EXPECT_EQ(Eval("return redis.error_reply('oops')"), "-ERR oops");
  EXPECT_EQ(Eval("return redis.error_reply('-CODE the message')"), "-CODE the message");
  EXPECT_EQ(Eval("return redis.error_reply()"), "-ERR wrong number or type of arguments");
  EXPECT_EQ(Eval("return redis.error_reply(1)"), "-ERR wrong number or type of arguments");
  EXPECT_EQ(Eval("return redis.status_reply('PONG')"), "+PONG");
  EXPECT_EQ(Eval("return redis.sha1hex('')"), "$da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(Eval("return redis.sha1hex(123)"), "$40bd001563085fc35165329ea1ff5c5ecbdbbeef");
  EXPECT_EQ(Eval("return redis.sha1hex()"),
            "-ERR wrong number of arguments script: " + Sha("return redis.sha1hex()") +
                ", on @user_script:1.");
  EXPECT_EQ(Eval("return redis.setresp(4)"),
            "-ERR RESP version must be 2 or 3. script: " + Sha("return redis.setresp(4)") +
                ", on @user_script:1.");
  EXPECT_EQ(Eval("return redis.log(redis.LOG_WARNING, 'hello', 'there')"), "nil");
  ASSERT_EQ(calls.logs.size(), 1u);
  EXPECT_EQ(calls.logs[0], std::make_pair(3, std::string("hello there")));
  EXPECT_EQ(Eval("return redis.log(99, 'hello')"),
            "-ERR Invalid debug level. script: " + Sha("return redis.log(99, 'hello')") +
                ", on @user_script:1.");
  EXPECT_EQ(Eval("return redis.replicate_commands()"), ":1");
  EXPECT_EQ(Eval("return redis.set_repl(redis.REPL_ALL)"), "nil");
  EXPECT_EQ(Eval("return redis.breakpoint()"), "nil");
  EXPECT_EQ(Eval("return redis.REDIS_VERSION"), "$7.0.15");
  EXPECT_EQ(Eval("return redis.REDIS_VERSION_NUM"), ":458767");
  EXPECT_EQ(Eval("return redis.LOG_DEBUG..redis.LOG_VERBOSE..redis.LOG_NOTICE..redis.LOG_WARNING.."
                 "redis.REPL_NONE..redis.REPL_AOF..redis.REPL_SLAVE..redis.REPL_REPLICA..redis."
                 "REPL_ALL"),
            "$012301223");
  EXPECT_EQ(Eval("return cjson.encode({1,2,3})"), "$[1,2,3]");
  EXPECT_EQ(Eval("return cjson.decode('[1,2,{\"a\":3}]')[3].a"), ":3");
  EXPECT_EQ(Eval("return bit.band(7,3)"), ":3");
  // Replies of commands, as Lua sees them in RESP2 and RESP3.
  EXPECT_EQ(Eval("return type(redis.call('get','nokey'))"), "$boolean");
  EXPECT_EQ(Eval("redis.setresp(3) return type(redis.call('get','nokey'))"), "$nil");
  calls.data["k"] = "v";
  EXPECT_EQ(Eval("return redis.call('mget','k','none')"), "[$v nil]");
  EXPECT_EQ(Eval("return redis.call('set','k','w')"), "+OK");
}

TEST_F(LuaEngineTest, TheSandbox) {
  auto missing = [this](const std::string& name) {
    const std::string body = "return type(" + name + ")";
    return Eval(body) ==
           "-ERR user_script:1: Script attempted to access nonexistent global "
           "variable '" +
               name + "' script: " + Sha(body) + ", on @user_script:1.";
  };
  for (const char* name :
       {"os", "io", "require", "loadfile", "dofile", "print", "setfenv", "getfenv", "debug",
        "newproxy", "module", "package", "jit", "coroutine"}) {
    EXPECT_TRUE(missing(name)) << name;
  }
  for (const char* name : {"loadstring", "load", "pcall", "xpcall", "tostring", "setmetatable",
                           "rawset", "rawget", "unpack", "select", "gcinfo", "collectgarbage"}) {
    EXPECT_EQ(Eval(std::string("return type(") + name + ")"), "$function") << name;
  }
  EXPECT_EQ(Eval("return type(string.dump)"), "$nil");
  // Globals and the libraries are read-only.
  EXPECT_EQ(Eval("x = 5 return x"),
            "-ERR user_script:1: Attempt to modify a readonly table script: " +
                Sha("x = 5 return x") + ", on @user_script:1.");
  EXPECT_EQ(Eval("redis.call = nil return 1"),
            "-ERR user_script:1: Attempt to modify a readonly table script: " +
                Sha("redis.call = nil return 1") + ", on @user_script:1.");
  EXPECT_EQ(Eval("string.rep = nil return 1"),
            "-ERR user_script:1: Attempt to modify a readonly table script: " +
                Sha("string.rep = nil return 1") + ", on @user_script:1.");
  EXPECT_EQ(Eval("return rawset(_G, 'zz', 1) and 1"),
            "-ERR Attempt to modify a readonly table script: " +
                Sha("return rawset(_G, 'zz', 1) and 1") + ", on @user_script:1.");
  EXPECT_EQ(Eval("return setmetatable(_G, nil)"),
            "-ERR Attempt to modify a readonly table script: " +
                Sha("return setmetatable(_G, nil)") + ", on @user_script:1.");
  EXPECT_EQ(Eval("return getmetatable(_G)"), "[]");
  EXPECT_EQ(Eval("local f = loadstring('zz = 1') return f()"),
            "-ERR [string \"zz = 1\"]:1: Attempt to modify a readonly table script: " +
                Sha("local f = loadstring('zz = 1') return f()") + ", on zz = 1:1.");
  EXPECT_EQ(Eval("return loadstring('\\27LJ')"), "nil");
  EXPECT_EQ(Eval("return select(2, loadstring('\\27LJ'))"),
            "$loading bytecode is not allowed in scripts");
  EXPECT_EQ(Eval("\x1bLJ\x02"),
            "-ERR Error compiling script (new function): user_script:1: loading bytecode is not "
            "allowed");
  // Local variables and tables of a script's own are fine, and nothing leaks between scripts.
  EXPECT_EQ(Eval("local t = {} for i=1,10 do t[i] = i end return #t"), ":10");
  EXPECT_EQ(Eval("return rawget(_G, 'zz')"), "nil");
}

// Found by the script fuzzer: numbers out of int's range (or NaN) where the redis table expects
// small ones were cast before being checked; error tables with metamethods.
TEST_F(LuaEngineTest, HostileNumbersAndErrorTables) {
  EXPECT_EQ(Eval("return redis.setresp(1e300)").rfind("-ERR RESP version must be 2 or 3.", 0), 0u);
  EXPECT_EQ(Eval("return redis.setresp(0/0)").rfind("-ERR RESP version must be 2 or 3.", 0), 0u);
  EXPECT_EQ(Eval("return redis.log(0/0, 'x')").rfind("-ERR Invalid debug level.", 0), 0u);
  EXPECT_EQ(Eval("return redis.set_repl(0/0)").rfind("-ERR Invalid replication flags.", 0), 0u);
  const std::string hostile =
      "error(setmetatable({err='E x'}, {__newindex=function() error('no') end, "
      "__index=function() error('no') end}))";
  EXPECT_EQ(Eval(hostile), "-E x script: " + Sha(hostile) + ", on @user_script:1.");
  EXPECT_EQ(Eval("error({err='E y', line=1e300, source={}})").rfind("-E y script: ", 0), 0u);
  EXPECT_EQ(Eval("return 1"), ":1");
}

TEST_F(LuaEngineTest, LongScriptsPauseAndResume) {
  auto sha = engine->Load("local s = 0 for i = 1, 3000000 do s = s + i end return s");
  ASSERT_TRUE(sha.ok());
  int pauses = 0;
  LuaEngine::RunOptions opts;
  opts.should_pause = [] { return true; };
  auto run = engine->Start(*sha, {}, {}, &calls, opts);
  while (run->Resume() == LuaRun::State::kPaused) ++pauses;
  EXPECT_EQ(Show(run->result()), ":4500001500000");
  EXPECT_GT(pauses, 1000);
  // Two runs interleaved keep their own KEYS.
  auto sha2 = engine->Load("local s = 0 for i = 1, 100000 do s = s + 1 end return KEYS[1]");
  ASSERT_TRUE(sha2.ok());
  auto a = engine->Start(*sha2, {"a"}, {}, &calls, opts);
  auto b = engine->Start(*sha2, {"b"}, {}, &calls, opts);
  bool a_done = false, b_done = false;
  while (!a_done || !b_done) {
    if (!a_done) a_done = a->Resume() == LuaRun::State::kDone;
    if (!b_done) b_done = b->Resume() == LuaRun::State::kDone;
  }
  EXPECT_EQ(Show(a->result()), "$a");
  EXPECT_EQ(Show(b->result()), "$b");
}

TEST_F(LuaEngineTest, AKilledRunStopsAndTheEngineCarriesOn) {
  auto sha = engine->Load("while true do end");
  ASSERT_TRUE(sha.ok());
  LuaEngine::RunOptions opts;
  int hooks = 0;
  opts.should_pause = [&hooks] { return ++hooks % 10 == 0; };
  auto run = engine->Start(*sha, {}, {}, &calls, opts);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(run->Resume(), LuaRun::State::kPaused);
  run->Kill("ERR Script killed by user with SCRIPT KILL...");
  EXPECT_EQ(run->Resume(), LuaRun::State::kDone);
  EXPECT_EQ(Show(run->result()), "-ERR Script killed by user with SCRIPT KILL...");
  // Killed while inside pcall: the pcall cannot keep it alive.
  auto sha2 = engine->Load("while true do pcall(function() while true do end end) end");
  ASSERT_TRUE(sha2.ok());
  auto run2 = engine->Start(*sha2, {}, {}, &calls, opts);
  ASSERT_EQ(run2->Resume(), LuaRun::State::kPaused);
  run2->Kill("ERR killed");
  EXPECT_EQ(run2->Resume(), LuaRun::State::kDone);
  EXPECT_EQ(Eval("return 7"), ":7");
}

TEST_F(LuaEngineTest, AScriptThatCannotPauseIsStoppedAfterItsBound) {
  // table.sort's comparator runs inside C: no pause is possible there.
  const std::string body =
      "local t = {} for i = 1, 50 do t[i] = i end "
      "table.sort(t, function(a, b) while true do end end) return 1";
  auto sha = engine->Load(body);
  ASSERT_TRUE(sha.ok());
  LuaEngine::RunOptions opts;
  opts.should_pause = [] { return true; };
  opts.unpausable_hooks_max = 100;
  auto run = engine->Start(*sha, {}, {}, &calls, opts);
  while (run->Resume() == LuaRun::State::kPaused) {
  }
  EXPECT_NE(Show(run->result()).find("cannot be paused"), std::string::npos) << Show(run->result());
  EXPECT_EQ(Eval("return 8"), ":8");
}

TEST_F(LuaEngineTest, TheMemoryLimitFailsTheScriptNotTheEngine) {
  auto e = LuaEngine::Create({.memory_max = 8 << 20});
  ASSERT_TRUE(e.ok());
  auto sha = (*e)->Load("local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(100) .. i end");
  ASSERT_TRUE(sha.ok());
  auto run = (*e)->Start(*sha, {}, {}, &calls, {});
  while (run->Resume() == LuaRun::State::kPaused) {
  }
  EXPECT_NE(Show(run->result()).find("memory"), std::string::npos) << Show(run->result());
  run.reset();
  auto ok = (*e)->Load("return 'still here'");
  ASSERT_TRUE(ok.ok());
  auto run2 = (*e)->Start(*ok, {}, {}, &calls, {});
  EXPECT_EQ(run2->Resume(), LuaRun::State::kDone);
  EXPECT_EQ(Show(run2->result()), "$still here");
}

TEST_F(LuaEngineTest, DeepTablesAndDeepRecursionAreErrors) {
  // A reply nested deeper than the bound ends in an error where it is cut.
  EXPECT_NE(Eval("local t = {} local c = t for i = 1, 1000 do c[1] = {} c = c[1] end return t")
                .find("-ERR reached lua stack limit"),
            std::string::npos);
  const std::string r = Eval("local function f(n) return f(n + 1) + 1 end return f(1)");
  EXPECT_EQ(r.rfind("-ERR user_script:1: stack overflow", 0), 0u) << r;
}

TEST_F(LuaEngineTest, TheCacheAndFlush) {
  auto a = engine->Load("return 1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  EXPECT_TRUE(engine->Has(*a));
  ASSERT_NE(engine->Body(*a), nullptr);
  EXPECT_EQ(*engine->Body(*a), "return 1");
  engine->Flush();
  EXPECT_FALSE(engine->Has(*a));
  EXPECT_EQ(engine->script_count(), 0u);
}

}  // namespace
}  // namespace synod::compute

namespace synod::compute {
namespace {

class LuaLibraryTest : public LuaEngineTest {
 protected:
  std::string Load(const std::string& code) {
    auto lib = engine->LoadLibrary(code);
    if (!lib.ok()) return "-" + std::string(lib.status().message());
    std::string out = (*lib)->name + ":";
    for (const FunctionInfo& f : (*lib)->functions) {
      out += " " + f.name + (f.no_writes ? "(ro)" : "");
    }
    return out;
  }
  std::string Call(const std::string& code, const std::string& fname, std::vector<std::string> keys,
                   std::vector<std::string> args) {
    auto lib = engine->LoadLibrary(code);
    if (!lib.ok()) return "-" + std::string(lib.status().message());
    const FunctionInfo* f = (*lib)->Find(fname);
    if (f == nullptr) return "no function";
    auto run = engine->StartFunction(**lib, *f, std::move(keys), std::move(args), &calls, {});
    while (run->Resume() == LuaRun::State::kPaused) {
    }
    return Show(run->result());
  }
};

TEST_F(LuaLibraryTest, LoadingRegistersFunctionsAsRedis) {
  const std::string lib =
      "#!lua name=mylib\n"
      "redis.register_function('echo', function(keys, args) return args[1] end)\n"
      "redis.register_function{function_name='get', callback=function(keys, args) "
      "return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}";
  EXPECT_EQ(Load(lib), "mylib: echo get(ro)");
  EXPECT_EQ(Call(lib, "echo", {}, {"hello"}), "$hello");
  calls.data["k"] = "v";
  EXPECT_EQ(Call(lib, "get", {"k"}, {}), "$v");
  // Errors name the function and the library's chunk.
  const std::string bad =
      "#!lua name=bad\nredis.register_function('e', function() error('boom') end)";
  EXPECT_EQ(Call(bad, "e", {}, {}), "-ERR user_function:2: boom script: e, on @user_function:2.");
}

TEST_F(LuaLibraryTest, BadLibrariesAreRedisErrors) {
  EXPECT_EQ(Load("no shebang"), "-ERR Missing library metadata");
  EXPECT_EQ(Load("#!lua"), "-ERR Invalid library metadata");
  EXPECT_EQ(Load("#!lua name=x foo=bar\nredis.register_function('q', function() return 1 end)"),
            "-ERR Invalid metadata value given: foo=bar");
  EXPECT_EQ(Load("#!js name=x\nfoo"), "-ERR Engine 'js' not found");
  EXPECT_EQ(Load("#!lua name=empty\nlocal x = 1"), "-ERR No functions registered");
  EXPECT_EQ(Load("#!lua name=bad\nredis.register_function('a-b', function() return 1 end)"),
            "-ERR Error registering functions: ERR Library names can only contain letters, "
            "numbers, or underscores(_) and must be at least one character long");
  EXPECT_EQ(Load("#!lua name=bad\nredis.register_function('ab', function() return 1 end, 'x')"),
            "-ERR Error registering functions: ERR wrong number of arguments to "
            "redis.register_function");
  EXPECT_EQ(Load("#!lua name=bad\nredis.register_function{function_name='ab', "
                 "callback=function() return 1 end, flags={'bogus'}}"),
            "-ERR Error registering functions: ERR unknown flag given");
  EXPECT_EQ(Load("#!lua name=bad\nredis.call('set','x','y')"),
            "-ERR Error registering functions: ERR user_function:2: Script attempted to access "
            "nonexistent global variable 'call'");
  EXPECT_EQ(Load("#!lua name=bad\nreturn 'x"),
            "-ERR Error compiling function: user_function:2: unfinished string near '<eof>'");
  EXPECT_EQ(Load("#!lua name=slow\nwhile true do end"),
            "-ERR Error registering functions: ERR the library's code ran too long while loading");
  // The engine carries on.
  EXPECT_EQ(Eval("return 5"), ":5");
}

TEST_F(LuaLibraryTest, EvalShebangs) {
  EXPECT_EQ(Eval("#!lua flags=no-writes\nreturn 1"), ":1");
  EXPECT_EQ(Eval("#!lua flags=bogus\nreturn 1"), "-ERR Unexpected flag in script shebang: bogus");
  EXPECT_EQ(Eval("#!lua name=x\nreturn 1"), "-ERR Unknown lua shebang option: name=x");
  auto sb = ParseScriptShebang("#!lua flags=no-writes,allow-oom\nreturn 1");
  ASSERT_TRUE(sb.ok());
  EXPECT_TRUE(sb->present);
  EXPECT_TRUE(sb->no_writes);
  // The shebang line is not code, and lines keep their numbers.
  EXPECT_EQ(Eval("#!lua\nerror('x')"),
            "-ERR user_script:2: x script: " + Sha("#!lua\nerror('x')") + ", on @user_script:2.");
}

}  // namespace
}  // namespace synod::compute
