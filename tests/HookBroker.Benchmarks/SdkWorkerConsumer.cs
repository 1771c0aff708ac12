using System.Diagnostics;
using Grpc.Net.Client;
using HookBroker.Client;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HookBroker.Benchmarks;

/// <summary>
/// The worker as an app writes it: a generic host with <c>AddHookWorker</c> and one hook for the benchmark's label,
/// its args bound by name (<c>ts</c>, the send timestamp, and <c>seq</c>). The SDK acks each delivery once its hook
/// returned. Options are those a user tuning a fast handler for throughput picks (see <see cref="MaxInFlight"/>).
/// </summary>
internal sealed class SdkWorkerConsumer : IBenchConsumer
{
    /// <summary>Deliveries the broker may lease to the worker at once: the raw consumer's window, the most allowed.</summary>
    public const int MaxInFlight = 10_000;

    /// <summary>Handlers at once: the hook only records a timestamp, so one per core keeps both cores busy without
    /// handlers queueing on each other.</summary>
    public static readonly int MaxConcurrency = Environment.ProcessorCount;

    private readonly IHost _host;
    private readonly ArrivalTally _tally;

    private SdkWorkerConsumer(IHost host, ArrivalTally tally)
    {
        _host = host;
        _tally = tally;
    }

    public Task Done => _tally.Done;

    public int Distinct => _tally.Distinct;

    public long Duplicates => _tally.Duplicates;

    /// <summary>Starts the worker host of <paramref name="group"/> and returns once the broker reports it connected.</summary>
    public static async Task<SdkWorkerConsumer> StartAsync(Uri address, GrpcChannel channel, string group, string label, int n, Latencies latencies)
    {
        var tally = new ArrivalTally(n, latencies);
        var hooks = new Hooks().Event(label, (long ts, int seq) => tally.Record(seq, ts));
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace).SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddHookWorker(hooks, o =>
        {
            o.Address = address;
            o.Group = group;
            o.MaxInFlight = MaxInFlight;
            o.MaxConcurrency = MaxConcurrency;
        });
        var host = builder.Build();
        await host.StartAsync();
        var admin = new HookBrokerAdmin.HookBrokerAdminClient(channel);
        var waiting = Stopwatch.StartNew();
        while (!(await admin.ListGroupsAsync(new ListGroupsRequest())).Groups.Any(g => g.Name == group && g.ConnectedWorkers > 0))
        {
            if (waiting.Elapsed > TimeSpan.FromSeconds(30))
            {
                await host.StopAsync();
                host.Dispose();
                throw new InvalidOperationException($"the SDK worker of group '{group}' did not connect");
            }

            await Task.Delay(5);
        }

        return new SdkWorkerConsumer(host, tally);
    }

    public async ValueTask DisposeAsync()
    {
        // The worker stops taking deliveries, finishes its handlers, sends their acks and closes its stream.
        await _host.StopAsync();
        _host.Dispose();
    }
}
