using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using HookBroker.Client.Tests.Infrastructure;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Tests;

/// <summary>
/// The client side of scale-out: a client or worker configured with several broker nodes keeps working when one goes
/// down. Each node here is a real broker process with its own SQLite store (the shared Redis storage is tested with the
/// broker), so an event lives on the node that stored it.
/// </summary>
public sealed class FailoverTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static HookBrokerClientOptions ClientOptions(params Uri[] addresses)
    {
        var options = new HookBrokerClientOptions { Source = "failover-tests" };
        foreach (var address in addresses)
        {
            options.Addresses.Add(address);
        }

        options.Retry.InitialDelay = TimeSpan.FromMilliseconds(50);
        options.Retry.MaxDelay = TimeSpan.FromMilliseconds(500);
        return options;
    }

    private static async Task<bool> HasWorkerAsync(BrokerProcess broker, string group)
    {
        if (!broker.IsRunning)
        {
            return false;
        }

        using var channel = broker.CreateChannel();
        var admin = new HookBrokerAdmin.HookBrokerAdminClient(channel);
        var groups = await admin.ListGroupsAsync(new ListGroupsRequest(), cancellationToken: Token);
        return groups.Groups.Any(g => g.Name == group && g.ConnectedWorkers > 0);
    }

    private static async Task<GetStatsResponse> StatsAsync(BrokerProcess broker)
    {
        using var channel = broker.CreateChannel();
        return await new HookBrokerAdmin.HookBrokerAdminClient(channel).GetStatsAsync(new GetStatsRequest(), cancellationToken: Token);
    }

    [Theory(Timeout = 180_000)]
    [InlineData("SIGKILL")]
    [InlineData("SIGTERM")]
    public async Task Concurrent_raises_spread_over_two_nodes_and_none_is_lost_when_one_goes_down(string signal)
    {
        await using var a = new BrokerProcess();
        await using var b = new BrokerProcess();
        await Task.WhenAll(a.StartAsync(Token), b.StartAsync(Token));
        // One worker per node (single address each) records which node delivered which raise.
        var handled = new ConcurrentDictionary<int, ConcurrentQueue<string>>();
        Hooks RecordingHooks(string node) => new Hooks().Event("order_placed", (int n) => handled.GetOrAdd(n, _ => new ConcurrentQueue<string>()).Enqueue(node));
        using var workerA = await WorkerHost.StartAsync(a, "orders", RecordingHooks("A"), Token);
        using var workerB = await WorkerHost.StartAsync(b, "orders", RecordingHooks("B"), Token);
        await Poll.UntilAsync(async () => await HasWorkerAsync(a, "orders") && await HasWorkerAsync(b, "orders"), Wait, "a worker on each node", Token);

        var retries = new RetryCounter();
        using var loggerFactory = LoggerFactory.Create(l => l.AddProvider(retries));
        await using var client = new HookBrokerClient(ClientOptions(a.GrpcAddress, b.GrpcAddress), loggerFactory);
        var succeeded = new ConcurrentQueue<int>();
        var failures = new ConcurrentQueue<string>();
        var next = 0;
        var stopping = false;

        async Task RaiseLoopAsync()
        {
            while (!Volatile.Read(ref stopping))
            {
                var n = Interlocked.Increment(ref next);
                try
                {
                    var result = await client.ExecuteEventAsync("order_placed", new { n }, cancellationToken: Token);
                    if (result.RoutedGroups == 1)
                    {
                        succeeded.Enqueue(n);
                    }
                    else
                    {
                        failures.Enqueue($"raise {n}: routed to {result.RoutedGroups} groups");
                    }
                }
                catch (HookBrokerException e)
                {
                    failures.Enqueue($"raise {n}: {e.GetType().Name}: {e.Message}");
                }
            }
        }

        var loops = Enumerable.Range(0, 8).Select(_ => Task.Run(RaiseLoopAsync, Token)).ToArray();
        await Poll.UntilAsync(
            () => succeeded.Count >= 300 && handled.Values.Any(nodes => nodes.Contains("A")) && handled.Values.Any(nodes => nodes.Contains("B")),
            Wait,
            "300 raises, delivered by both nodes (round robin)",
            Token);
        if (signal == "SIGKILL")
        {
            await a.KillAsync(Token);
        }
        else
        {
            await a.StopAsync(Token);
        }

        var downAt = succeeded.Count;
        await Poll.UntilAsync(() => succeeded.Count >= downAt + 300 || !failures.IsEmpty, Wait, "300 more raises with node A down", Token);
        Volatile.Write(ref stopping, true);
        await Task.WhenAll(loops);
        Assert.True(failures.IsEmpty, $"{failures.Count} raise(s) failed beyond the retry budget:\n{string.Join('\n', failures.Take(20))}");
        TestContext.Current.TestOutputHelper?.WriteLine($"{succeeded.Count} raises, {downAt} before {signal}; {retries.Count} retried attempt(s)");

        // Every answered raise is stored on A (delivered once A is back on the same data) or on B.
        await a.StartAsync(Token);
        try
        {
            await Poll.UntilAsync(() => succeeded.All(handled.ContainsKey), Wait, "every answered raise to be delivered by A or B", Token);
        }
        catch (TimeoutException e)
        {
            var missing = succeeded.Where(n => !handled.ContainsKey(n)).Order().Take(20);
            throw new TimeoutException($"{e.Message} Missing: {string.Join(", ", missing)}", e);
        }

        await Task.WhenAll(workerA.StopAsync(Token), workerB.StopAsync(Token));
        b.AssertNoErrorsLogged();
        a.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 120_000)]
    public async Task A_worker_process_configured_with_two_nodes_resubscribes_to_the_other_when_its_node_is_killed()
    {
        await using var a = new BrokerProcess();
        await using var b = new BrokerProcess();
        await Task.WhenAll(a.StartAsync(Token), b.StartAsync(Token));
        // Configured through environment variables HookBroker__Addresses__0 and __1.
        await using var worker = TestWorkerProcess.Start([a, b], "jobs", "failover-worker");
        BrokerProcess? first = null;
        await Poll.UntilAsync(
            async () =>
            {
                worker.ThrowIfExited();
                first = await HasWorkerAsync(a, "jobs") ? a : await HasWorkerAsync(b, "jobs") ? b : null;
                return first is not null;
            },
            Wait,
            "the worker to subscribe on one of the nodes",
            Token);
        var second = first == a ? b : a;
        TestContext.Current.TestOutputHelper?.WriteLine($"The worker subscribed on node {(first == a ? "A" : "B")} first.");

        await using (var onFirst = new HookBrokerClient(new HookBrokerClientOptions { Address = first!.GrpcAddress }))
        {
            Assert.Equal(1, (await onFirst.ExecuteEventAsync("slow_job", new { job = "before" }, cancellationToken: Token)).RoutedGroups);
        }

        await Poll.UntilAsync(() => worker.Reported("finished", "before"), Wait, "the job raised on the first node to be handled", Token);

        await first.KillAsync(Token);
        await Poll.UntilAsync(
            async () =>
            {
                worker.ThrowIfExited();
                return await HasWorkerAsync(second, "jobs");
            },
            Wait,
            "the worker to resubscribe on the other node",
            Token);
        await using (var onSecond = new HookBrokerClient(new HookBrokerClientOptions { Address = second.GrpcAddress }))
        {
            Assert.Equal(1, (await onSecond.ExecuteEventAsync("slow_job", new { job = "after" }, cancellationToken: Token)).RoutedGroups);
        }

        await Poll.UntilAsync(() => worker.Reported("finished", "after"), Wait, "the job raised on the other node to be handled", Token);
        Assert.False(worker.HasExited);
        second.AssertNoErrorsLogged();
    }

    [Theory(Timeout = 60_000)]
    [InlineData("refused")]
    [InlineData("silent")]
    public async Task A_dead_first_address_neither_stops_nor_slows_the_client_and_the_worker(string how)
    {
        await using var b = new BrokerProcess();
        await b.StartAsync(Token);
        using var silent = how == "silent" ? await SilentPort.OpenAsync(Token) : null;
        var dead = silent?.Address ?? new Uri($"http://127.0.0.1:{FreePorts.Reserve(1)[0]}");
        var handled = new ConcurrentQueue<int>();
        var hooks = new Hooks().Event("ping", (int n) => handled.Enqueue(n));
        using var worker = await WorkerHost.StartAsync(b, "pingers", hooks, Token, o =>
        {
            o.Addresses.Add(dead);
            o.Addresses.Add(b.GrpcAddress);
        });
        await Poll.UntilAsync(() => HasWorkerAsync(b, "pingers"), Wait, "the worker to subscribe through the second address", Token);
        await using var client = new HookBrokerClient(ClientOptions(dead, b.GrpcAddress));

        var elapsed = Stopwatch.StartNew();
        for (var n = 1; n <= 20; n++)
        {
            Assert.Equal(1, (await client.ExecuteEventAsync("ping", new { n }, cancellationToken: Token)).RoutedGroups);
        }

        elapsed.Stop();
        await Poll.UntilAsync(() => handled.Count == 20, Wait, "the 20 raises to be handled", Token);
        Assert.Equal(20UL, (await StatsAsync(b)).RaisedEvents);
        // A raise sent towards the dead node would have waited for the connect timeout (5 s) or its deadline (10 s).
        Assert.True(elapsed.Elapsed < TimeSpan.FromSeconds(4), $"20 raises took {elapsed.Elapsed}");
        await worker.StopAsync(Token);
        b.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 120_000)]
    public async Task The_web_sample_takes_its_broker_nodes_from_environment_variables()
    {
        await using var b = new BrokerProcess();
        await b.StartAsync(Token);
        var handled = new ConcurrentQueue<string>();
        var hooks = new Hooks().Event("user_created", (string username) => handled.Enqueue(username));
        using var worker = await WorkerHost.StartAsync(b, "email-sender", hooks, Token);
        await Poll.UntilAsync(() => HasWorkerAsync(b, "email-sender"), Wait, "the worker to subscribe", Token);
        var web = new Uri($"http://127.0.0.1:{FreePorts.Reserve(1)[0]}");
        // Its appsettings.json sets HookBroker:Client:Address to 127.0.0.1:5000; Addresses takes precedence.
        await using var webApp = SampleProcess.Start(
            "web sample",
            RepoPaths.WebSampleDll,
            new Dictionary<string, string>
            {
                ["HookBroker__Client__Addresses__0"] = $"http://127.0.0.1:{FreePorts.Reserve(1)[0]}",
                ["HookBroker__Client__Addresses__1"] = b.GrpcAddress.ToString(),
            },
            ["--urls", web.ToString()]);
        using var http = new HttpClient { BaseAddress = web, Timeout = TimeSpan.FromSeconds(20) };
        await Poll.UntilAsync(
            async () =>
            {
                webApp.ThrowIfExited();
                try
                {
                    using var health = await http.GetAsync(new Uri("/healthz", UriKind.Relative), Token);
                    return health.IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            },
            Wait,
            "the web sample to answer /healthz",
            Token);

        using var response = await http.PostAsJsonAsync(new Uri("/users", UriKind.Relative), new { username = "ali", email = "ali@example.com" }, Token);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        await Poll.UntilAsync(() => handled.Contains("ali"), Wait, "user_created to reach the worker through the second node", Token);
        await worker.StopAsync(Token);
        b.AssertNoErrorsLogged();
    }
}
