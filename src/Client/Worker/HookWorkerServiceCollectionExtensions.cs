using HookBroker.Client;
using HookBroker.Client.Internal;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the HookBroker worker host and client.</summary>
public static class HookBrokerServiceCollectionExtensions
{
    /// <summary>
    /// Adds a worker host (a hosted service) that subscribes <see cref="HookWorkerOptions.Group"/> to the labels of
    /// <paramref name="hooks"/> and runs them as events arrive: acks on success, nacks on an exception (the broker
    /// retries with backoff), rejects on a <see cref="HookBindingException"/>, reconnects when the broker goes away, and
    /// drains on shutdown. The options are validated when the host starts. One worker host per service collection.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="hooks">The hooks this worker runs; register them before the host starts.</param>
    /// <param name="configure">Sets the group (required), the broker address or addresses, flow control and timeouts.</param>
    /// <returns>The services, for chaining.</returns>
    public static IServiceCollection AddHookWorker(this IServiceCollection services, Hooks hooks, Action<HookWorkerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(hooks);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<HookWorkerOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HookWorkerOptions>, HookWorkerOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(new WorkerHooks(hooks));
        services.AddHostedService<HookWorkerService>();
        return services;
    }

    /// <summary>
    /// Adds a singleton <see cref="IHookBrokerClient"/> (one gRPC channel, reused) configured by
    /// <paramref name="configure"/>, using the container's logger factory and <see cref="TimeProvider"/>.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the broker address or addresses, source, retries and circuit breaker; null for the defaults.</param>
    /// <returns>The services, for chaining.</returns>
    public static IServiceCollection AddHookBrokerClient(this IServiceCollection services, Action<HookBrokerClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var builder = services.AddOptions<HookBrokerClientOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IHookBrokerClient>(sp => new HookBrokerClient(
            sp.GetRequiredService<IOptions<HookBrokerClientOptions>>().Value,
            sp.GetService<ILoggerFactory>(),
            sp.GetService<TimeProvider>()));
        return services;
    }
}
