using HookBroker.Broker.Configuration;
using HookBroker.Broker.Core;
using HookBroker.Broker.Services;
using HookBroker.Broker.Storage;
using HookBroker.Broker.Storage.Memory;
using HookBroker.Broker.Storage.Redis;
using HookBroker.Broker.Storage.Sqlite;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the broker: options (validated at start), storage engine, core and gRPC services.</summary>
public static class BrokerServiceCollectionExtensions
{
    /// <summary>Adds the broker's services, bound to the "HookBroker" configuration section.</summary>
    public static IServiceCollection AddHookBrokerServer(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<BrokerOptions>().Bind(configuration.GetSection(BrokerOptions.Section)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BrokerOptions>, BrokerOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IHookStore>(sp => CreateStore(sp));
        services.TryAddSingleton<GroupPolicies>();
        services.TryAddSingleton<GroupRouter>();
        services.TryAddSingleton<OutcomeWaiters>();
        services.TryAddSingleton<BrokerMetrics>();
        services.TryAddSingleton<RaiseValidator>();
        services.TryAddSingleton<RaiseCoordinator>();
        services.TryAddSingleton<SubscriptionManager>();
        services.TryAddSingleton<StoreEvents>();
        services.TryAddSingleton<AdminOperations>();
        services.TryAddSingleton<Housekeeping>();
        // Lifetime first: storage is open before housekeeping starts.
        services.AddHostedService<BrokerLifetime>();
        services.AddHostedService(sp => sp.GetRequiredService<Housekeeping>());

        // The gRPC services and the interceptor hold no per-call state: one instance each, resolved from the container,
        // rather than one built by the activator (and disposed) for every call.
        services.TryAddSingleton<HookBrokerService>();
        services.TryAddSingleton<HookBrokerAdminService>();
        services.TryAddSingleton<BrokerExceptionInterceptor>();
        services.AddGrpc(o => o.EnableDetailedErrors = false)
            .AddServiceOptions<HookBrokerAdminService>(o => o.Interceptors.Add<BrokerExceptionInterceptor>());
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks().AddCheck("broker", () => HealthCheckResult.Healthy());
        return services;
    }

    private static IHookStore CreateStore(IServiceProvider services)
    {
        var options = services.GetRequiredService<IOptions<BrokerOptions>>().Value;
        return options.Storage switch
        {
            StorageEngine.Memory => new MemoryHookStore(),
            StorageEngine.Redis => new RedisHookStore(options.Redis, services.GetRequiredService<ILogger<RedisHookStore>>()),
            _ => new SqliteHookStore(
                new SqliteStoreOptions
                {
                    DataPath = options.DataPath,
                    Durability = options.Durability == HookBroker.Broker.Configuration.Durability.Fsync ? HookBroker.Broker.Storage.Sqlite.Durability.Fsync : HookBroker.Broker.Storage.Sqlite.Durability.Normal,
                },
                services.GetRequiredService<ILogger<SqliteHookStore>>()),
        };
    }
}
