using System.Diagnostics;
using System.Globalization;
using Grpc.Net.Client;
using HookBroker.Benchmarks;
using HookBroker.Client;

// The benchmark: starts the real broker (and redis-server or nats-server for a comparison) as separate processes, raises
// through the SDK (HookBrokerClient.ExecuteEventAsync), consumes through the SDK's worker host (AddHookWorker) and prints
// one key=value result line per scenario run. Not a timed test: CI runs it with --smoke and checks lost=0.
BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine(ex.Message);
    return 2;
}

var lines = new List<ResultLine>();
var scenarios = options.Scenario == "all" ? ["e2e", "raise", "fanout", "subscribers", "backlog", "start", "redis-streams", "nats-jetstream"] : new[] { options.Scenario };
foreach (var scenario in scenarios)
{
    switch (scenario)
    {
        case "e2e":
            await RunE2eAsync(options, lines);
            break;
        case "raise":
            await RunRaiseAsync(options, lines);
            break;
        case "fanout":
            await RunFanoutAsync(options, lines);
            break;
        case "redis-streams":
            await RunRedisAsync(options, options.Rate, lines);
            break;
        case "nats-jetstream":
            await RunNatsAsync(options, options.Rate, lines);
            break;
        case "subscribers":
            await RunSubscribersAsync(options, lines);
            break;
        case "backlog":
            await RunBacklogAsync(options, lines);
            break;
        case "start":
            await RunStartAsync(options, lines);
            break;
        default:
            Console.Error.WriteLine($"unknown scenario '{scenario}'\n{BenchOptions.Usage}");
            return 2;
    }
}

if (options.Scenario == "all" && !options.IsRedisEngine)
{
    // The scale-out engine's end-to-end figure, next to the embedded engine's (skipped without redis-server).
    await RunE2eAsync(options with { Engine = "redis" }, lines);
}

return lines.Any(l => l.Lost > 0) ? 1 : 0;

static string Engine(BenchOptions o) => $"hookbroker-{o.Engine}{(o.Durability == "fsync" ? "-fsync" : string.Empty)}";

static void Print(List<ResultLine> lines, ResultLine line)
{
    lines.Add(line);
    Console.WriteLine(line);
}

static async Task WarmUpAsync(GrpcChannel channel, Uri address, IHookBrokerClient? sdk, bool rawConsumer, TimeSpan warmup)
{
    // The JIT needs seconds of full load to reach full speed: run the workload until the warm-up time is spent.
    var stopwatch = Stopwatch.StartNew();
    var round = 0;
    while (stopwatch.Elapsed < warmup)
    {
        await HookBrokerWorkload.RunAsync(channel, address, sdk, rawConsumer, $"warmup{round++}", 1, 20_000, 0);
    }
}

// The SDK client the producer raises through: one per broker, as an app keeps one. Null with --producer raw: the
// producer then uses the generated client's RaiseStream.
static HookBrokerClient? Sdk(BrokerServer broker, BenchOptions o) =>
    o.RawProducer ? null : new(new HookBrokerClientOptions { Address = broker.Address, Source = "benchmark" });

// Bytes allocated per event by this process. Under Server GC the runtime's total sometimes goes backwards between two
// readings: such a reading is printed as "na" rather than as a figure.
static string AllocatedText(double bytesPerEvent) =>
    bytesPerEvent >= 0 ? bytesPerEvent.ToString("0", CultureInfo.InvariantCulture) : "na";

// Rate mode measures the latency of a steady rate: the workload first runs at that rate, unmeasured, for a fifth of the
// measured run (2 s of 10), so that the measured run does not start on the aftermath of the throughput warm-up (the
// broker's log of a million events still being copied into its database file, a server's heap sized for full load).
static int SettleEvents(int n, int rate) => rate > 0 ? Math.Max(1, n / 5) : 0;

static async Task<ResultLine> MeasureAsync(BrokerServer broker, GrpcChannel channel, IHookBrokerClient? sdk, bool rawConsumer, string scenario, string engine, string label, int groups, int n, int rate)
{
    if (SettleEvents(n, rate) is > 0 and var settle)
    {
        await HookBrokerWorkload.RunAsync(channel, broker.Address, sdk, rawConsumer, label + "-settle", groups, settle, rate);
    }

    var cpuBefore = ProcessStats.CpuTime(broker.Pid);
    var redisCpuBefore = broker.Redis is { } redis ? ProcessStats.CpuTime(redis.Pid) : TimeSpan.Zero;
    var clientCpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
    var clientAllocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
    HookBrokerWorkload.Outcome outcome;
    await using (var rss = new PeakRss(broker.Pid))
    await using (var redisRss = broker.Redis is { } r ? new PeakRss(r.Pid) : null)
    {
        outcome = await HookBrokerWorkload.RunAsync(channel, broker.Address, sdk, rawConsumer, label, groups, n, rate);
        var cpu = (ProcessStats.CpuTime(broker.Pid) - cpuBefore).TotalMicroseconds / ((double)n * groups);
        var clientCpu = (Process.GetCurrentProcess().TotalProcessorTime - clientCpuBefore).TotalMicroseconds / ((double)n * groups);
        var clientAllocated = (GC.GetTotalAllocatedBytes(precise: true) - clientAllocatedBefore) / ((double)n * groups);
        var line = new ResultLine(scenario, engine, rate > 0 ? "rate" : "throughput", outcome.EventsPerSecond, outcome.Latencies.Percentiles(), rss.Peak, cpu, (long)n * groups, outcome.Lost)
            .Add("duplicates", outcome.Duplicates.ToString(CultureInfo.InvariantCulture))
            // The benchmark process: the producer (SDK or raw stream) and the consumer (SDK worker or raw stream) together.
            .Add("client_cpu_us_per_event", clientCpu.ToString("0.0", CultureInfo.InvariantCulture))
            .Add("client_alloc_bytes_per_event", AllocatedText(clientAllocated))
            .Add("groups", groups.ToString(CultureInfo.InvariantCulture))
            .Add("producer", sdk is null ? "raw-stream" : "sdk")
            .Add("consumer", rawConsumer ? "raw-stream" : "sdk");
        if (broker.Redis is { } server && redisRss is not null)
        {
            // The broker's figures leave out the Redis server it stores in: reported beside them.
            var redisCpu = (ProcessStats.CpuTime(server.Pid) - redisCpuBefore).TotalMicroseconds / ((double)n * groups);
            line.Add("redis_rss_mb", redisRss.Peak.ToString("0", CultureInfo.InvariantCulture))
                .Add("redis_cpu_us_per_event", redisCpu.ToString("0.0", CultureInfo.InvariantCulture));
        }

        return line;
    }
}

// Each round's ratio (ours over theirs, round by round), so the spread behind a ratio of means is in the output.
static void PrintRoundRatios(string key, IEnumerable<double> ours, IEnumerable<double> theirs) =>
    Console.WriteLine($"{key}={string.Join(',', ours.Zip(theirs, (a, b) => (a / b).ToString("0.00", CultureInfo.InvariantCulture)))}");

// Starts the broker for a scenario; with engine redis and no redis-server installed, prints the scenario as skipped.
static async Task<BrokerServer?> StartBrokerAsync(BenchOptions o, string scenario, string? build = null)
{
    try
    {
        return await BrokerServer.StartAsync(o, build);
    }
    catch (System.ComponentModel.Win32Exception) when (o.IsRedisEngine)
    {
        Console.WriteLine($"scenario={scenario} engine={Engine(o)} skipped=redis-server-not-installed (apt-get install redis-server)");
        return null;
    }
}

static async Task RunE2eAsync(BenchOptions o, List<ResultLine> lines)
{
    var compared = o.CompareRedis || o.CompareNats;
    var rounds = compared ? o.Rounds : 1;
    var ours = new List<ResultLine>();
    var theirs = new List<ResultLine>();
    for (var round = 0; round < rounds; round++)
    {
        await using (var broker = await StartBrokerAsync(o, "e2e"))
        {
            if (broker is null)
            {
                return;
            }

            using var channel = GrpcChannel.ForAddress(broker.Address);
            await using var sdk = Sdk(broker, o);
            await WarmUpAsync(channel, broker.Address, sdk, o.RawConsumer, o.Warmup);
            var n = o.Rate > 0 ? (int)(o.Rate * o.Duration.TotalSeconds) : o.Events;
            var line = await MeasureAsync(broker, channel, sdk, o.RawConsumer, "e2e", Engine(o), $"e2e{round}", 1, n, o.Rate);
            Print(lines, line);
            ours.Add(line);
            if (o.Rate == 0 && !compared)
            {
                // Throughput alone was asked for; also report rate mode, the latency figure.
                var rate = o.Smoke ? 1_000 : 5_000;
                Print(lines, await MeasureAsync(broker, channel, sdk, o.RawConsumer, "e2e", Engine(o), $"e2e-rate{round}", 1, (int)(rate * o.Duration.TotalSeconds), rate));
            }
        }

        if ((o.CompareRedis ? await RunRedisAsync(o, o.Rate, lines) : o.CompareNats ? await RunNatsAsync(o, o.Rate, lines) : null) is { } other)
        {
            theirs.Add(other);
        }
    }

    if (theirs.Count > 0)
    {
        var system = o.CompareRedis ? "redis_streams" : "nats_jetstream";
        PrintRoundRatios($"round_ratios_vs_{system}", ours.Select(l => l.EventsPerSecond), theirs.Select(l => l.EventsPerSecond));
        var ratio = ours.Average(l => l.EventsPerSecond) / theirs.Average(l => l.EventsPerSecond);
        Console.WriteLine($"ratio_vs_{system}={ratio.ToString("0.00", CultureInfo.InvariantCulture)}");
    }
}

static async Task RunRaiseAsync(BenchOptions o, List<ResultLine> lines)
{
    // With --bare, rounds alternate between the broker and the bare gRPC server, so both see the same machine.
    var rounds = o.Bare ? o.Rounds : 1;
    var ours = new List<double>();
    var bare = new List<double>();
    for (var round = 0; round < rounds; round++)
    {
        await using (var broker = await StartBrokerAsync(o, "raise"))
        {
            if (broker is null)
            {
                return;
            }

            using var channel = GrpcChannel.ForAddress(broker.Address);
            await using (var sdk = Sdk(broker, o))
            {
                await WarmUpAsync(channel, broker.Address, sdk, o.RawConsumer, o.Warmup);
            }

            // The SDK first (what an app gets: 64 concurrent ExecuteEventAsync callers, batched onto RaiseStream), then
            // the SDK unary, then the generated client's unary calls and RaiseStream, each labelled by call=.
            foreach (var how in new[] { RaiseCall.Sdk, RaiseCall.SdkUnary, RaiseCall.RawUnary, RaiseCall.RawStream })
            {
                if (!o.Calls.Contains(CallName(how)))
                {
                    continue;
                }

                var line = await MeasureRaiseAsync(broker.Pid, channel, broker.Address, Engine(o), $"raise-{how}{round}".ToLowerInvariant(), o.Events, how, subscribe: true);
                Print(lines, line);
                if (how == RaiseCall.RawUnary)
                {
                    ours.Add(line.EventsPerSecond);
                }
            }
        }

        if (o.Bare)
        {
            await using var server = await BareGrpcServer.StartAsync();
            using var channel = GrpcChannel.ForAddress(server.Address);
            var warm = Stopwatch.StartNew();
            for (var i = 0; warm.Elapsed < o.Warmup; i++)
            {
                await HookBrokerWorkload.RaiseOnlyAsync(channel, $"warmup{i}", 20_000, RaiseCall.RawUnary, subscribe: false);
            }

            var line = await MeasureRaiseAsync(server.Pid, channel, server.Address, "bare-grpc", "raise-unary", o.Events, RaiseCall.RawUnary, subscribe: false);
            Print(lines, line);
            bare.Add(line.EventsPerSecond);
        }
    }

    if (bare.Count > 0)
    {
        // The target: unary raise at 80% or more of the bare gRPC unary ceiling (raw unary against raw unary).
        PrintRoundRatios("round_ratios_vs_bare_grpc", ours, bare);
        Console.WriteLine($"ratio_vs_bare_grpc={(ours.Average() / bare.Average()).ToString("0.00", CultureInfo.InvariantCulture)}");
    }
}

// A call kind's name, in --calls and in the result line.
static string CallName(RaiseCall how) => how switch
{
    RaiseCall.Sdk => "sdk",
    RaiseCall.SdkUnary => "sdk-unary",
    RaiseCall.RawUnary => "raw-unary",
    _ => "raw-stream",
};

// One raise-only run: the server's CPU per raise, and this process's (the client's) beside it.
static async Task<ResultLine> MeasureRaiseAsync(int serverPid, GrpcChannel channel, Uri address, string engine, string label, int n, RaiseCall how, bool subscribe)
{
    var cpuBefore = ProcessStats.CpuTime(serverPid);
    var clientCpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
    await using var rss = new PeakRss(serverPid);
    var perSecond = await HookBrokerWorkload.RaiseOnlyAsync(channel, label, n, how, subscribe, address: address);
    var cpu = (ProcessStats.CpuTime(serverPid) - cpuBefore).TotalMicroseconds / n;
    var clientCpu = (Process.GetCurrentProcess().TotalProcessorTime - clientCpuBefore).TotalMicroseconds / n;
    return new ResultLine("raise", engine, "throughput", perSecond, (0, 0, 0), rss.Peak, cpu, n, 0)
        .Add("call", CallName(how))
        .Add("callers", how == RaiseCall.RawStream ? "1" : "64")
        .Add("client_cpu_us_per_event", clientCpu.ToString("0.0", CultureInfo.InvariantCulture));
}

static async Task RunFanoutAsync(BenchOptions o, List<ResultLine> lines)
{
    await using var broker = await StartBrokerAsync(o, "fanout");
    if (broker is null)
    {
        return;
    }

    using var channel = GrpcChannel.ForAddress(broker.Address);
    await using var sdk = Sdk(broker, o);
    await WarmUpAsync(channel, broker.Address, sdk, o.RawConsumer, o.Warmup);
    Print(lines, await MeasureAsync(broker, channel, sdk, o.RawConsumer, "fanout", Engine(o), "fanout", 10, Math.Max(1, o.Events / 10), 0));
}

// The broker's start, cold: a fresh broker process per round (alternating the builds of --broker), timed to its first
// ready health answer and to its first event raised, delivered and acked; then the e2e workload (raw producer and
// consumer) from the start for --duration, in chunks, to show how fast it gets to full speed while its JIT compiles.
// This process warms up first on a broker of its own, so its own JIT is not in the figures.
static async Task RunStartAsync(BenchOptions o, List<ResultLine> lines)
{
    await using (var warm = await StartBrokerAsync(o, "start"))
    {
        if (warm is null)
        {
            return;
        }

        using var channel = GrpcChannel.ForAddress(warm.Address);
        await WarmUpAsync(channel, warm.Address, sdk: null, rawConsumer: true, o.Warmup);
    }

    var chunk = o.Smoke ? 1_000 : 10_000;
    for (var round = 0; round < o.Rounds; round++)
    {
        foreach (var build in o.Brokers)
        {
            await using var broker = await StartBrokerAsync(o, "start", build);
            if (broker is null)
            {
                return;
            }

            using var channel = GrpcChannel.ForAddress(broker.Address);
            await using var rss = new PeakRss(broker.Pid);
            var first = await HookBrokerWorkload.RunAsync(channel, broker.Address, null, rawConsumer: true, $"start{round}-first", 1, 1, 0);
            var firstEventAfter = Stopwatch.GetElapsedTime(broker.StartedAt);
            var startCpu = ProcessStats.CpuTime(broker.Pid);

            // Chunks of the e2e workload until --duration has passed, then each second's events/s: the curve to full speed.
            var ends = new List<TimeSpan>();
            var lost = first.Lost;
            var loadStarted = Stopwatch.GetTimestamp();
            while (Stopwatch.GetElapsedTime(loadStarted) < o.Duration)
            {
                var outcome = await HookBrokerWorkload.RunAsync(channel, broker.Address, null, rawConsumer: true, $"start{round}-{ends.Count}", 1, chunk, 0);
                ends.Add(Stopwatch.GetElapsedTime(loadStarted));
                lost += outcome.Lost;
            }

            var loaded = ends[^1];
            var n = (long)chunk * ends.Count;
            var cpu = (ProcessStats.CpuTime(broker.Pid) - startCpu).TotalMicroseconds / n;
            var perSecond = PerSecond(ends, chunk);

            Print(lines, new ResultLine("start", Engine(o), "throughput", n / loaded.TotalSeconds, (0, 0, 0), rss.Peak, cpu, n + 1, lost)
                .Add("build", build == BenchOptions.BuildOutput ? "build-output" : Path.GetFileName(Path.TrimEndingDirectorySeparator(build)))
                .Add("ready_ms", broker.ReadyAfter.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture))
                .Add("first_event_ms", firstEventAfter.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture))
                .Add("start_cpu_ms", startCpu.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture))
                .Add("first_second_events_per_s", perSecond[0].ToString("0", CultureInfo.InvariantCulture))
                .Add("events_per_s_by_second", string.Join(',', perSecond.Select(r => (Math.Round(r / 100) * 100).ToString("0", CultureInfo.InvariantCulture)))));
        }
    }
}

// Events/s in each second of a run of chunks of `chunk` events that ended at `ends`: each chunk's events spread evenly
// over its own time (from the previous chunk's end to its end), summed per second; the last, partial second over its
// own length.
static List<double> PerSecond(List<TimeSpan> ends, int chunk)
{
    var total = ends[^1].TotalSeconds;
    var events = new double[(int)Math.Ceiling(total)];
    var from = 0.0;
    foreach (var end in ends)
    {
        var to = end.TotalSeconds;
        for (var second = (int)from; second < to; second++)
        {
            events[second] += chunk * (Math.Min(to, second + 1) - Math.Max(from, second)) / (to - from);
        }

        from = to;
    }

    return [.. events.Select((count, second) => count / Math.Min(1, total - second))];
}

static async Task RunSubscribersAsync(BenchOptions o, List<ResultLine> lines)
{
    await using var broker = await StartBrokerAsync(o, "subscribers");
    if (broker is null)
    {
        return;
    }

    using var channel = CapacityWorkloads.ManyStreamsChannel(broker.Address);
    var count = o.Smoke ? 200 : 10_000;
    await using var rss = new PeakRss(broker.Pid);
    var (opened, delivery) = await CapacityWorkloads.IdleSubscribersAsync(channel, count);
    var ms = delivery.TotalMilliseconds;
    Print(lines, new ResultLine("subscribers", Engine(o), "throughput", 0, (ms, ms, ms), rss.Peak, null, 1, 0)
        .Add("subscribers", opened.ToString(CultureInfo.InvariantCulture)));
}

static async Task RunBacklogAsync(BenchOptions o, List<ResultLine> lines)
{
    await using var broker = await StartBrokerAsync(o, "backlog");
    if (broker is null)
    {
        return;
    }

    using var channel = GrpcChannel.ForAddress(broker.Address);
    var n = o.Smoke ? 5_000 : 1_000_000;
    var cpuBefore = ProcessStats.CpuTime(broker.Pid);
    await using var rss = new PeakRss(broker.Pid);
    var (raiseRate, drainRate, lost, duplicates) = await CapacityWorkloads.BacklogAsync(channel, n);
    var cpu = (ProcessStats.CpuTime(broker.Pid) - cpuBefore).TotalMicroseconds / n;
    Print(lines, new ResultLine("backlog", Engine(o), "throughput", raiseRate, (0, 0, 0), rss.Peak, cpu, n, lost)
        .Add("drain_events_per_s", drainRate.ToString("0", CultureInfo.InvariantCulture))
        .Add("duplicates", duplicates.ToString(CultureInfo.InvariantCulture)));
}

// The e2e workload on Redis Streams (its own redis-server), or a line saying it was skipped.
static async Task<ResultLine?> RunRedisAsync(BenchOptions o, int rate, List<ResultLine> lines)
{
    RedisServer redis;
    var fsync = o.Durability.Equals("fsync", StringComparison.OrdinalIgnoreCase);
    try
    {
        // Like for like: with --durability fsync, Redis fsyncs every write too (appendfsync always).
        redis = await RedisServer.StartAsync(fsync);
    }
    catch (System.ComponentModel.Win32Exception)
    {
        Console.WriteLine("scenario=redis-streams skipped=redis-server-not-installed (apt-get install redis-server)");
        return null;
    }

    await using (redis)
    {
        var engine = fsync ? "redis-streams-aof-always" : "redis-streams-aof-everysec";
        return await MeasureOtherAsync(o, rate, redis.Pid, "redis-streams", engine, (key, n, r) => RedisStreamsWorkload.RunAsync(redis.Port, key, n, r), lines);
    }
}

// The e2e workload on NATS JetStream (its own nats-server; file storage, its default flush, no fsync per write), or a
// line saying it was skipped.
static async Task<ResultLine?> RunNatsAsync(BenchOptions o, int rate, List<ResultLine> lines)
{
    NatsServer nats;
    try
    {
        nats = await NatsServer.StartAsync();
    }
    catch (System.ComponentModel.Win32Exception)
    {
        Console.WriteLine("scenario=nats-jetstream skipped=nats-server-not-installed (apt-get install nats-server)");
        return null;
    }

    await using (nats)
    {
        return await MeasureOtherAsync(o, rate, nats.Pid, "nats-jetstream", "nats-jetstream-file", (name, n, r) => NatsJetStreamWorkload.RunAsync(nats.Port, name, n, r), lines);
    }
}

// The workload on another system, warmed up as the broker is, then measured: the server's own CPU and RSS in the broker
// columns, this process's (its client's) beside them.
static async Task<ResultLine> MeasureOtherAsync(BenchOptions o, int rate, int serverPid, string scenario, string engine, Func<string, int, int, Task<HookBrokerWorkload.Outcome>> run, List<ResultLine> lines)
{
    var warm = Stopwatch.StartNew();
    for (var round = 0; warm.Elapsed < o.Warmup; round++)
    {
        await run($"warmup{round}", 20_000, 0);
    }

    var n = rate > 0 ? (int)(rate * o.Duration.TotalSeconds) : o.Events;
    if (SettleEvents(n, rate) is > 0 and var settle)
    {
        await run("settle", settle, rate);
    }

    var cpuBefore = ProcessStats.CpuTime(serverPid);
    var clientCpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
    var clientAllocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
    await using var rss = new PeakRss(serverPid);
    var outcome = await run("e2e", n, rate);
    var cpu = (ProcessStats.CpuTime(serverPid) - cpuBefore).TotalMicroseconds / n;
    var clientCpu = (Process.GetCurrentProcess().TotalProcessorTime - clientCpuBefore).TotalMicroseconds / n;
    var clientAllocated = (GC.GetTotalAllocatedBytes(precise: true) - clientAllocatedBefore) / (double)n;
    var line = new ResultLine(scenario, engine, rate > 0 ? "rate" : "throughput", outcome.EventsPerSecond, outcome.Latencies.Percentiles(), rss.Peak, cpu, n, outcome.Lost)
        .Add("duplicates", outcome.Duplicates.ToString(CultureInfo.InvariantCulture))
        .Add("client_cpu_us_per_event", clientCpu.ToString("0.0", CultureInfo.InvariantCulture))
        .Add("client_alloc_bytes_per_event", AllocatedText(clientAllocated));
    Print(lines, line);
    return line;
}
