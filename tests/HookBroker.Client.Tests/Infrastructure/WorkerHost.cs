using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace HookBroker.Client.Tests.Infrastructure;

/// <summary>A generic host running the SDK's worker host against a test broker.</summary>
internal static class WorkerHost
{
    public static async Task<IHost> StartAsync(BrokerProcess broker, string group, Hooks hooks, CancellationToken cancellationToken, Action<HookWorkerOptions>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddHookWorker(hooks, o =>
        {
            o.Address = broker.GrpcAddress;
            o.Group = group;
            o.ReconnectInitialDelay = TimeSpan.FromMilliseconds(50);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(500);
            o.DrainTimeout = TimeSpan.FromSeconds(5);
            configure?.Invoke(o);
        });
        var host = builder.Build();
        await host.StartAsync(cancellationToken);
        return host;
    }
}
