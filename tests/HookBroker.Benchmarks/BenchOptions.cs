using System.Globalization;

namespace HookBroker.Benchmarks;

/// <summary>Command-line options: <c>&lt;scenario&gt; [--n N] [--rate R] [--duration S] [--warmup S] [--smoke] [--compare redis]
/// [--rounds R] [--engine sqlite|memory|redis] [--durability normal|fsync] [--bare] [--producer sdk|raw] [--consumer sdk|raw]
/// [--calls sdk,sdk-unary,raw-unary,raw-stream] [--broker DIR[,DIR]]</c>.</summary>
internal sealed record BenchOptions(
    string Scenario,
    int Events,
    int Rate,
    TimeSpan Duration,
    TimeSpan Warmup,
    bool Smoke,
    string? Compare,
    string Engine,
    string Durability,
    bool Bare,
    bool RawProducer,
    bool RawConsumer,
    int Rounds,
    IReadOnlyList<string> Calls,
    IReadOnlyList<string> Brokers)
{
    /// <summary>In <c>--broker</c>: src/Broker's own build output (Release or Debug, as this program's build).</summary>
    public const string BuildOutput = "build";

    /// <summary>The raise scenario's call kinds, in the order it runs them.</summary>
    public static readonly string[] AllCalls = ["sdk", "sdk-unary", "raw-unary", "raw-stream"];

    public const string Usage = """
        usage: HookBroker.Benchmarks <scenario> [options]
          scenarios: e2e | raise | fanout | subscribers | backlog | start | redis-streams | nats-jetstream | all
          --n N              events per measured run (default 200000; smoke 2000)
          --rate R           rate mode at R events/s (e2e); without it, throughput mode
          --duration S       rate mode duration in seconds (default 10; smoke 2)
          --warmup S         warm-up seconds before measuring (default 10; smoke 1)
          --smoke            small N, short warm-up (what CI runs)
          --compare redis    e2e: also run the Redis Streams workload, alternately, and print the ratio
          --compare nats     e2e: the same with NATS JetStream (nats-server, file storage)
          --rounds R         with --compare or --bare (or start): rounds of each system, alternating (default 2); the
                             ratio is of their means, and each round's ratio is printed before it
          --engine E         sqlite (default) | memory | redis (starts its own redis-server: appendonly yes,
                             appendfsync everysec; the broker on it). `all` also runs e2e on redis
          --durability D     normal (default) | fsync (sqlite: synchronous=FULL; redis, and the Redis Streams
                             comparison: appendfsync always)
          --bare             raise: also run the unary workload against a bare gRPC server (same hosting, answers
                             at once), alternately, and print the broker's share of that ceiling
          --producer P       e2e, fanout: sdk (default: ExecuteEventAsync from many concurrent callers) | raw (the
                             generated client's RaiseStream, 500 raises per message: the wire protocol alone)
          --consumer C       e2e, fanout: sdk (default: the SDK's worker host, AddHookWorker with a hook) | raw (a
                             generated Subscribe stream acking each batch in one message: the wire protocol alone)
          --calls C,...      raise: which calls to measure, of sdk, sdk-unary, raw-unary, raw-stream (default all;
                             --bare needs raw-unary)
          --broker DIR       the broker build to run: a folder holding HookBroker.Broker.dll (e.g. a dotnet publish
                             output), or `build` (default: src/Broker's build output). start takes a comma-separated
                             list and alternates them round by round (e.g. --broker build,/tmp/r2r)
        """;

    /// <summary>True for <c>--compare redis</c>: Redis Streams runs the same workload, alternately.</summary>
    public bool CompareRedis => Compare == "redis";

    /// <summary>True for <c>--compare nats</c>: NATS JetStream runs the same workload, alternately.</summary>
    public bool CompareNats => Compare == "nats";

    /// <summary>True for <c>--engine redis</c>: the broker stores in a redis-server this program starts.</summary>
    public bool IsRedisEngine => Engine.Equals("redis", StringComparison.OrdinalIgnoreCase);

    public static BenchOptions Parse(string[] args)
    {
        if (args.Length == 0 || args[0].StartsWith('-'))
        {
            throw new ArgumentException(Usage);
        }

        var smoke = args.Contains("--smoke");
        string? Value(string name)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        }

        int Int(string name, int fallback) => Value(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

        var engine = Value("--engine") ?? "sqlite";
        if (engine is not ("sqlite" or "memory" or "redis"))
        {
            throw new ArgumentException($"unknown engine '{engine}'\n{Usage}");
        }

        var producer = Value("--producer") ?? "sdk";
        if (producer is not ("sdk" or "raw"))
        {
            throw new ArgumentException($"unknown producer '{producer}'\n{Usage}");
        }

        var consumer = Value("--consumer") ?? "sdk";
        if (consumer is not ("sdk" or "raw"))
        {
            throw new ArgumentException($"unknown consumer '{consumer}'\n{Usage}");
        }

        var compare = Value("--compare");
        if (compare is not (null or "redis" or "nats"))
        {
            throw new ArgumentException($"unknown --compare '{compare}': redis or nats\n{Usage}");
        }

        if (compare == "nats" && Value("--durability") == "fsync")
        {
            throw new ArgumentException($"--durability fsync has its like-for-like setting on Redis (appendfsync always) only: compare it with redis\n{Usage}");
        }

        var rounds = Int("--rounds", 2);
        if (rounds < 1)
        {
            throw new ArgumentException($"--rounds must be at least 1 (got {rounds})\n{Usage}");
        }

        var calls = (Value("--calls") ?? string.Join(',', AllCalls)).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (calls.Length == 0)
        {
            throw new ArgumentException($"--calls takes a comma-separated list of {string.Join(", ", AllCalls)}\n{Usage}");
        }

        if (calls.FirstOrDefault(c => !AllCalls.Contains(c)) is { } unknownCall)
        {
            throw new ArgumentException($"unknown call '{unknownCall}': --calls takes {string.Join(", ", AllCalls)}\n{Usage}");
        }

        if (args.Contains("--bare") && !calls.Contains("raw-unary"))
        {
            throw new ArgumentException($"--bare compares the broker's raw-unary calls with the bare server's: keep raw-unary in --calls\n{Usage}");
        }

        var brokers = (Value("--broker") ?? BuildOutput).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (brokers.Length == 0 || (brokers.Length > 1 && args[0] != "start"))
        {
            throw new ArgumentException($"--broker takes one broker build (a list only with start)\n{Usage}");
        }

        if (brokers.FirstOrDefault(b => b != BuildOutput && !File.Exists(Path.Combine(b, "HookBroker.Broker.dll"))) is { } missing)
        {
            throw new ArgumentException($"--broker {missing}: no HookBroker.Broker.dll there (give a dotnet publish output of src/Broker, or `build`)\n{Usage}");
        }

        return new BenchOptions(
            args[0],
            Int("--n", smoke ? 2_000 : 200_000),
            Int("--rate", 0),
            TimeSpan.FromSeconds(Int("--duration", smoke ? 2 : 10)),
            TimeSpan.FromSeconds(Int("--warmup", smoke ? 1 : 10)),
            smoke,
            compare,
            engine,
            Value("--durability") ?? "normal",
            args.Contains("--bare"),
            producer == "raw",
            consumer == "raw",
            rounds,
            calls,
            brokers);
    }
}
