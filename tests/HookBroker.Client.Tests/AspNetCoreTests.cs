using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using HookBroker.Client.Tests.Infrastructure;
using HookBroker.Protocol.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Tests;

/// <summary>The ASP.NET Core integration in-process (TestServer): default events, local and remote.</summary>
public sealed class AspNetCoreTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    /// <summary>Nothing listens there: connections are refused at once.</summary>
    private static readonly Uri NoBroker = new("http://127.0.0.1:1");

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static async Task<WebApplication> StartAppAsync(Uri broker, Hooks hooks, Action<HookBrokerAppOptions>? configure = null, LogCollector? logs = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
        }

        builder.Services.AddHookBroker(
            o =>
            {
                o.Client.Address = broker;
                o.Client.Source = "web-tests";
                o.ReconnectInitialDelay = TimeSpan.FromMilliseconds(50);
                o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(500);
                o.ShutdownFlushTimeout = TimeSpan.FromSeconds(2);
                configure?.Invoke(o);
            },
            hooks);
        var app = builder.Build();
        app.UseHookBroker();
        app.MapGet("/ping", () => "pong");
        app.MapPost("/users", async (IHookBrokerClient client, CancellationToken ct) =>
            (await client.ExecuteEventAsync("user_created", new { username = "ali", email = "ali@example.com" }, cancellationToken: ct)).EventId);
        await app.StartAsync(Token);
        return app;
    }

    private static async Task<GetStatsResponse> StatsAsync(BrokerProcess broker)
    {
        using var channel = broker.CreateChannel();
        return await new HookBrokerAdmin.HookBrokerAdminClient(channel).GetStatsAsync(new GetStatsRequest(), cancellationToken: Token);
    }

    [Fact(Timeout = 30_000)]
    public async Task Default_events_run_the_app_hooks_inline_with_their_args()
    {
        var seen = new ConcurrentQueue<string>();
        var hooks = new Hooks()
            .Event("startup", () => seen.Enqueue("startup"))
            .Event("request_start", (string method, string path, string request_id) => seen.Enqueue($"start {method} {path} {request_id.Length > 0}"))
            .Event("request_end", (string method, string path, int status_code, double duration_ms, string request_id) =>
                seen.Enqueue($"end {method} {path} {status_code} {duration_ms >= 0} {request_id.Length > 0}"))
            .Event("shutdown", () => seen.Enqueue("shutdown"));
        await using var app = await StartAppAsync(NoBroker, hooks, o => o.RaiseDefaultEventsRemotely = false);
        Assert.Equal(["startup"], seen);

        using var response = await app.GetTestClient().GetAsync(new Uri("/ping", UriKind.Relative), Token);
        Assert.Equal("pong", await response.Content.ReadAsStringAsync(Token));
        Assert.Equal(["startup", "start GET /ping True", "end GET /ping 200 True True"], seen);

        using var missing = await app.GetTestClient().GetAsync(new Uri("/nowhere", UriKind.Relative), Token);
        await app.StopAsync(Token);
        Assert.Equal(["startup", "start GET /ping True", "end GET /ping 200 True True", "start GET /nowhere True", "end GET /nowhere 404 True True", "shutdown"], seen);
    }

    [Fact(Timeout = 60_000)]
    public async Task ExecuteEventAsync_raises_through_the_broker_first_then_runs_the_app_hooks_and_their_error_reaches_the_caller()
    {
        await using var broker = new BrokerProcess();
        await broker.StartAsync(Token);
        var unroutedSeenByHook = new ConcurrentQueue<ulong>();
        var hooks = new Hooks()
            .Event("user_created", async (string username, CancellationToken ct) => unroutedSeenByHook.Enqueue((await StatsAsync(broker)).UnroutedEvents))
            .Event("user_created", new Action<string>(email => throw new InvalidOperationException($"second hook refuses {email}")));
        await using var app = await StartAppAsync(broker.GrpcAddress, hooks);
        var client = app.Services.GetRequiredService<IHookBrokerClient>();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(
            async () => await client.ExecuteEventAsync("user_created", new { username = "ali", email = "ali@example.com" }, cancellationToken: Token));

        Assert.Equal("second hook refuses ali@example.com", error.Message);
        // The first hook ran after the broker had answered the raise (unrouted: no group listens).
        Assert.Equal([1UL], unroutedSeenByHook);
        await app.StopAsync(Token);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 60_000)]
    public async Task Request_events_reach_a_worker_when_its_group_listens()
    {
        await using var broker = new BrokerProcess();
        await broker.StartAsync(Token);
        var remote = new ConcurrentQueue<string>();
        var workerHooks = new Hooks()
            .Event("startup", (HookContext context) => remote.Enqueue($"startup from {context.Source}"))
            .Event("request_end", (string method, string path, int status_code, double duration_ms, string request_id) =>
                remote.Enqueue($"end {method} {path} {status_code}"));
        using var worker = await WorkerHost.StartAsync(broker, "audit", workerHooks, Token);
        using (var channel = broker.CreateChannel())
        {
            var admin = new HookBrokerAdmin.HookBrokerAdminClient(channel);
            await Poll.UntilAsync(
                async () => (await admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: Token)).Groups.Any(g => g.Name == "audit" && g.ConnectedWorkers > 0),
                Wait,
                "the audit worker to subscribe",
                Token);
        }

        await using var app = await StartAppAsync(broker.GrpcAddress, new Hooks());
        using var response = await app.GetTestClient().GetAsync(new Uri("/ping", UriKind.Relative), Token);

        await Poll.UntilAsync(() => remote.Contains("end GET /ping 200") && remote.Contains("startup from web-tests"), Wait, "startup and request_end at the worker", Token);
        await app.StopAsync(Token);
        await worker.StopAsync(Token);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 60_000)]
    public async Task Default_events_are_not_raised_when_no_group_listens()
    {
        await using var broker = new BrokerProcess();
        await broker.StartAsync(Token);
        using var counters = new DefaultEventCounters();
        await using var app = await StartAppAsync(broker.GrpcAddress, new Hooks());

        using var response = await app.GetTestClient().GetAsync(new Uri("/ping", UriKind.Relative), Token);

        // startup, request_start and request_end, each skipped once the broker's interest was known.
        await Poll.UntilAsync(() => counters.Total("hookbroker.client.default_events.skipped") >= 3, Wait, "three skipped default events", Token);
        var stats = await StatsAsync(broker);
        Assert.Equal(0UL, stats.RaisedEvents);
        Assert.Equal(0UL, stats.UnroutedEvents);
        Assert.Equal(0, counters.Total("hookbroker.client.default_events.sent"));
        await app.StopAsync(Token);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 60_000)]
    public async Task A_full_buffer_drops_request_events_counts_them_and_warns_once_without_blocking_requests()
    {
        var logs = new LogCollector();
        using var counters = new DefaultEventCounters();
        var requestsSeenLocally = 0;
        var hooks = new Hooks().Event("request_end", () => Interlocked.Increment(ref requestsSeenLocally));
        // No broker: the interest is never known, so events wait in the buffer of 4 and the rest is dropped.
        await using var app = await StartAppAsync(NoBroker, hooks, o => o.DefaultEventBufferCapacity = 4, logs);
        var client = app.GetTestClient();

        for (var i = 0; i < 50; i++)
        {
            using var response = await client.GetAsync(new Uri("/ping", UriKind.Relative), Token);
            Assert.Equal("pong", await response.Content.ReadAsStringAsync(Token));
        }

        Assert.Equal(50, requestsSeenLocally);
        // 1 startup + 100 request events, 4 of which fit in the buffer.
        Assert.Equal(97, counters.Total("hookbroker.client.default_events.dropped", "buffer_full"));
        var warnings = logs.Entries.Where(e => e.EventId == 203).ToList();
        var warning = Assert.Single(warnings);
        Assert.Equal(LogLevel.Warning, warning.Level);
        await app.StopAsync(Token);
        // What was still buffered when the flush timed out at shutdown is counted too (the shutdown event found the buffer full).
        Assert.Equal(4, counters.Total("hookbroker.client.default_events.dropped", "stopped"));
        Assert.Equal(98, counters.Total("hookbroker.client.default_events.dropped", "buffer_full"));
    }

    /// <summary>Sums the HookBroker.Client counters, by instrument and reason tag.</summary>
    private sealed class DefaultEventCounters : IDisposable
    {
        private readonly MeterListener listener = new();
        private readonly ConcurrentDictionary<(string Name, string? Reason), long> totals = new();

        public DefaultEventCounters()
        {
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "HookBroker.Client")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            };
            listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            {
                string? reason = null;
                foreach (var tag in tags)
                {
                    if (tag.Key == "hookbroker.reason")
                    {
                        reason = tag.Value as string;
                    }
                }

                totals.AddOrUpdate((instrument.Name, reason), value, (_, total) => total + value);
            });
            listener.Start();
        }

        public long Total(string name, string? reason = null) =>
            totals.Where(t => t.Key.Name == name && (reason is null || t.Key.Reason == reason)).Sum(t => t.Value);

        public void Dispose() => listener.Dispose();
    }

    /// <summary>Keeps every log entry's level and event id.</summary>
    private sealed class LogCollector : ILoggerProvider
    {
        private readonly ConcurrentQueue<(LogLevel Level, int EventId, string Message)> entries = new();

        public IReadOnlyList<(LogLevel Level, int EventId, string Message)> Entries => [.. entries];

        public ILogger CreateLogger(string categoryName) => new Collector(entries);

        public void Dispose()
        {
        }

        private sealed class Collector(ConcurrentQueue<(LogLevel, int, string)> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                entries.Enqueue((logLevel, eventId.Id, formatter(state, exception)));
        }
    }
}
