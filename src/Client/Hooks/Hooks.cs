using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using HookBroker.Client.Internal;

namespace HookBroker.Client;

/// <summary>
/// A collection of hooks, like Backendpy's <c>Hooks()</c>: <c>hooks.Event("user_created", async (string username,
/// string email, CancellationToken ct) =&gt; ...)</c>. Attach it to a worker host (<c>services.AddHookWorker(hooks, ...)</c>)
/// to run it remotely, or run it in-process with <see cref="ExecuteAsync"/>.
/// </summary>
/// <remarks>
/// <para>Binding: each parameter takes the arg of the same name: exact first, then ignoring case, <c>_</c> and <c>-</c>
/// (<c>user_name</c> binds <c>userName</c>). Values are converted through System.Text.Json (numeric strings bind to
/// integer parameters, numbers and booleans to string parameters). A parameter with a default value is optional; any
/// other missing argument, a null for a non-nullable parameter, or an unconvertible value throws
/// <see cref="HookBindingException"/> naming the parameter. Extra args are ignored. A <see cref="CancellationToken"/>
/// parameter gets the hook's token and a <see cref="HookContext"/> parameter the event's details. When a hook has
/// exactly one other parameter, of a record, POCO or dictionary type, and the args have no key of its name, it takes
/// the whole args object.</para>
/// <para>Binding is compiled once, at registration. Registration is thread-safe; register hooks before a worker starts.</para>
/// </remarks>
public sealed class Hooks
{
    private static readonly JsonSerializerOptions DefaultJsonOptions = CreateDefaultJsonOptions();
    private readonly Lock gate = new();
    private readonly JsonSerializerOptions json;
    private HookRegistration[] registrations = [];

    /// <summary>Creates an empty collection with the default binding options (System.Text.Json web defaults).</summary>
    public Hooks()
        : this(null)
    {
    }

    /// <summary>Creates an empty collection.</summary>
    /// <param name="jsonSerializerOptions">
    /// How arg values convert to parameter types; null for the defaults: <see cref="JsonSerializerDefaults.Web"/>
    /// (case-insensitive, numbers read from strings) that also respects required constructor parameters and nullable
    /// annotations of whole-args records.
    /// </param>
    public Hooks(JsonSerializerOptions? jsonSerializerOptions) => json = jsonSerializerOptions ?? DefaultJsonOptions;

    /// <summary>How many hooks the collection holds.</summary>
    public int Count => Volatile.Read(ref registrations).Length;

    /// <summary>The distinct labels and patterns of the hooks, in registration order: what a worker subscribes to.</summary>
    public IReadOnlyList<string> Labels => [.. Volatile.Read(ref registrations).Select(r => r.Label).Distinct(StringComparer.Ordinal)];

    /// <summary>Registers <paramref name="handler"/> as a hook of <paramref name="label"/>.</summary>
    /// <param name="label">The label, e.g. <c>user_created</c>, or a pattern (<c>user.*</c>, <c>billing.&gt;</c>).</param>
    /// <param name="handler">Any delegate; its parameters are bound by name from the args (see the remarks on <see cref="Hooks"/>).</param>
    /// <returns>This collection, for chaining.</returns>
    public Hooks Event(string label, Delegate handler)
    {
        CheckLabel(label);
        ArgumentNullException.ThrowIfNull(handler);
        Append([new HookRegistration(label, HookHandler.ForDelegate(handler, json))]);
        return this;
    }

    /// <summary>
    /// Registers every <see cref="HookEventAttribute"/> method of <typeparamref name="T"/>. Per call, the instance comes
    /// from the worker's services when <typeparamref name="T"/> is registered there, otherwise it is created (constructor
    /// arguments from the services) and disposed after the call.
    /// </summary>
    /// <returns>This collection, for chaining.</returns>
    public Hooks Add<T>()
        where T : class => AddMethods(typeof(T), instance: null);

    /// <summary>Registers every <see cref="HookEventAttribute"/> method of <paramref name="instance"/>, called on it.</summary>
    /// <returns>This collection, for chaining.</returns>
    public Hooks Add(object instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        return AddMethods(instance.GetType(), instance);
    }

    /// <summary>
    /// Appends the hooks of <paramref name="other"/> (as registered now), after this collection's: like attaching app
    /// hooks and project hooks, in order.
    /// </summary>
    /// <returns>This collection, for chaining.</returns>
    public Hooks Include(Hooks other)
    {
        ArgumentNullException.ThrowIfNull(other);
        Append(other.Snapshot());
        return this;
    }

    /// <summary>
    /// Runs the hooks of <paramref name="label"/> in-process, one after another in registration order, with
    /// <paramref name="args"/> converted as for a raise; the first hook that throws stops the loop and its exception
    /// reaches the caller. A label without hooks is a no-op.
    /// </summary>
    /// <exception cref="HookBindingException">A hook's parameters could not be bound.</exception>
    public async ValueTask ExecuteAsync(string label, object? args = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(label);
        var json = ArgsConverter.ToJson(ArgsConverter.ToStruct(args, ArgsConverter.DefaultRaiseOptions));
        var call = new HookCall(json, new HookContext(label), null, cancellationToken);
        foreach (var registration in Snapshot())
        {
            if (registration.Matches(label))
            {
                await registration.Handler.InvokeAsync(call);
            }
        }
    }

    /// <summary>Whether any hook of this collection matches <paramref name="label"/> (lets callers skip building args).</summary>
    internal bool HasHooksFor(string label)
    {
        foreach (var registration in Snapshot())
        {
            if (registration.Matches(label))
            {
                return true;
            }
        }

        return false;
    }

    internal HookRegistration[] Snapshot() => Volatile.Read(ref registrations);

    private Hooks AddMethods(Type type, object? instance)
    {
        var found = new List<HookRegistration>();
        foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static))
        {
            foreach (var attribute in method.GetCustomAttributes<HookEventAttribute>())
            {
                CheckLabel(attribute.Label);
                found.Add(new HookRegistration(attribute.Label, HookHandler.ForMethod(method, type, instance, json)));
            }
        }

        if (found.Count == 0)
        {
            throw new ArgumentException($"{type.Name} has no public method marked [HookEvent(\"label\")].", nameof(type));
        }

        Append(found);
        return this;
    }

    private void Append(IReadOnlyCollection<HookRegistration> added)
    {
        lock (gate)
        {
            registrations = [.. registrations, .. added];
        }
    }

    private static void CheckLabel(string label)
    {
        ArgumentException.ThrowIfNullOrEmpty(label);
        if (LabelMatcher.Check(label) is { } problem)
        {
            throw new ArgumentException($"Hook label '{label}' {problem}.", nameof(label));
        }
    }

    private static JsonSerializerOptions CreateDefaultJsonOptions()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            RespectRequiredConstructorParameters = true,
            RespectNullableAnnotations = true,
            NumberHandling = JsonNumberHandling.AllowReadingFromString,
        };
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}

/// <summary>A hook registered for a label or pattern.</summary>
internal sealed record HookRegistration(string Label, HookHandler Handler)
{
    public bool Matches(string label) => LabelMatcher.Matches(Label, label);
}
