using Grpc.Core;
using Grpc.Net.Client;
using HookBroker.Broker.Core;
using HookBroker.Broker.Services;
using HookBroker.Protocol.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>
/// The broker in-process on a TestServer, with the memory engine and a <see cref="FakeTimeProvider"/>, so lease,
/// backoff and retention rules run on fake time. Collects warnings and errors the broker logs.
/// </summary>
public sealed class BrokerTestHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly GrpcChannel _channel;

    private BrokerTestHost(WebApplication app, FakeTimeProvider time, LogCollector logs)
    {
        _app = app;
        Time = time;
        Logs = logs;
        _channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = app.GetTestServer().CreateHandler() });
        Client = new Protocol.V1.HookBroker.HookBrokerClient(_channel);
        Admin = new HookBrokerAdmin.HookBrokerAdminClient(_channel);
    }

    /// <summary>The broker's clock.</summary>
    public FakeTimeProvider Time { get; }

    /// <summary>What the broker logged at warning or above.</summary>
    public LogCollector Logs { get; }

    public Protocol.V1.HookBroker.HookBrokerClient Client { get; }

    public HookBrokerAdmin.HookBrokerAdminClient Admin { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Starts a broker; <paramref name="settings"/> override HookBroker:* keys (e.g. "Defaults:MaxAttempts").</summary>
    public static async Task<BrokerTestHost> StartAsync(IDictionary<string, string?>? settings = null, Action<IServiceCollection>? configureServices = null)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseTestServer();
        var config = new Dictionary<string, string?>
        {
            ["HookBroker:Storage"] = "Memory",
            // Housekeeping runs only when the test advances the fake clock.
            ["HookBroker:MaintenanceInterval"] = "00:00:01",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            config["HookBroker:" + key] = value;
        }

        builder.Configuration.AddInMemoryCollection(config);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        builder.Services.AddSingleton<TimeProvider>(time);
        var logs = new LogCollector();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        configureServices?.Invoke(builder.Services);
        builder.Services.AddHookBrokerServer(builder.Configuration);
        var app = builder.Build();
        app.MapGrpcService<HookBrokerService>();
        app.MapGrpcService<HookBrokerAdminService>();
        await app.StartAsync(TestContext.Current.CancellationToken);
        return new BrokerTestHost(app, time, logs);
    }

    /// <summary>Advances the clock and runs housekeeping once (lease expiry, retention, idempotency keys).</summary>
    public async Task AdvanceAsync(TimeSpan by)
    {
        Time.Advance(by);
        await Services.GetRequiredService<Housekeeping>().RunOnceAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>Raises one event.</summary>
    public async Task<RaiseResponse> RaiseAsync(string label, object? args = null, Action<RaiseRequest>? configure = null)
    {
        var request = new RaiseRequest { Event = label, Args = Args.Of(args) };
        configure?.Invoke(request);
        return await Client.RaiseAsync(request, cancellationToken: TestContext.Current.CancellationToken);
    }

    /// <summary>Opens a worker stream and waits for its <c>subscribed</c> answer.</summary>
    public async Task<TestWorker> SubscribeAsync(string group, string[] events, int maxInFlight = 100, bool omitConfirmed = false)
    {
        var worker = new TestWorker(Client.Subscribe(cancellationToken: TestContext.Current.CancellationToken));
        await worker.SubscribeAsync(group, events, maxInFlight, omitConfirmed);
        return worker;
    }

    /// <summary>Stops the host as SIGTERM would.</summary>
    public Task StopAsync() => _app.StopAsync(TestContext.Current.CancellationToken);

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await _app.DisposeAsync();
    }
}
