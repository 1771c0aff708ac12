using System.Diagnostics.Metrics;
using HookBroker.Client;
using HookBroker.Client.Internal;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the HookBroker integration of an ASP.NET Core (or any generic-host) app.</summary>
public static class HookBrokerAspNetCoreServiceCollectionExtensions
{
    /// <summary>
    /// Adds the app side of HookBroker: a singleton <see cref="IHookBrokerClient"/> whose <c>ExecuteEventAsync</c> raises
    /// through the broker and then runs <paramref name="hooks"/> in-process (like Backendpy's <c>App(hooks=[...])</c>),
    /// and the default events: <c>startup</c> once the host has started, <c>shutdown</c> once it has stopped, and, with
    /// <c>app.UseHookBroker()</c>, <c>request_start</c> / <c>request_end</c> around each request. Default events run the
    /// app's hooks inline; they are raised remotely only when a broker group listens, through a bounded background
    /// buffer, never adding a round trip to a request. The options are validated when the host starts.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the broker address (<c>o.Client.Address</c>, or <c>o.Client.Addresses</c> for several nodes), the source and the default-event buffer.</param>
    /// <param name="hooks">The hooks attached to the app; null for none. Register them before the host starts.</param>
    /// <returns>The services, for chaining.</returns>
    /// <exception cref="InvalidOperationException">AddHookBroker was already called on these services.</exception>
    public static IServiceCollection AddHookBroker(this IServiceCollection services, Action<HookBrokerAppOptions> configure, Hooks? hooks = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        if (services.Any(d => d.ServiceType == typeof(HookBrokerApp)))
        {
            throw new InvalidOperationException("AddHookBroker was already called: one app-attached HookBroker client per app.");
        }

        services.AddOptions<HookBrokerAppOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HookBrokerAppOptions>, HookBrokerAppOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        var appHooks = hooks ?? new Hooks();
        services.AddSingleton(sp => new HookBrokerApp(
            appHooks,
            sp.GetRequiredService<IOptions<HookBrokerAppOptions>>().Value,
            sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IMeterFactory>()));
        // The app-attached client replaces a plain one registered by AddHookBrokerClient.
        services.RemoveAll<IHookBrokerClient>();
        services.AddSingleton(sp => sp.GetRequiredService<HookBrokerApp>().Client);
        services.AddHostedService<HookBrokerAppLifetime>();
        return services;
    }
}
